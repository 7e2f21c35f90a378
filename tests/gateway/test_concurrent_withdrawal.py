"""A person who withdraws while a bulk read of everyone runs is not in it, or the read is refused.

The read is paused, deterministically, once the party's rows are being read (a source passed in
that waits on an event); the withdrawal is made and committed meanwhile from another thread of
the same process; then the read goes on. And a person who withdrew before a read began is never
in it, however the allowed people were kept since an earlier read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

from accord.errors import AccordError
from accord.gateway import Exchange, Release
from accord.service import Accord, person_ref
from accord.sources import Allowed, Source
from accord.sources.source import Rows
from gateway.world import AT, WATCH, WATCHED, World, request

pytestmark = pytest.mark.integration


def watch_history() -> Any:
    return request(
        "watch-history",
        requester="chirp",
        agreement="insights",
        purpose="personalize.content",
        categories=frozenset({WATCHED}),
    )


class PausingSource(Source):
    """Reelix's source, pausing each read once its rows are being read until told to go on."""

    def __init__(self, inner: Source) -> None:
        super().__init__(inner.engine, inner.dataset)
        self.reading = threading.Event()
        self.go_on = threading.Event()

    @contextmanager
    def read(
        self,
        collection: str,
        fields: Any,
        allowed: Allowed,
        *,
        where: Mapping[str, Any] | None = None,
        batch_size: int = 10_000,
        whom: bool = False,
    ) -> Iterator[Rows]:
        with super().read(
            collection, fields, allowed, where=where, batch_size=batch_size, whom=whom
        ) as rows:
            self.reading.set()
            assert self.go_on.wait(timeout=30), "the test never let the read go on"
            yield rows


def read_while(
    w: World, exchange: Exchange, change: Callable[[], object]
) -> dict[str, Release | BaseException]:
    """Run ``exchange`` in a thread, paused once Reelix's rows are being read, while ``change``
    runs; its release (``"release"``) or what it raised (``"error"``)."""
    source = PausingSource(w.sources["reelix"])
    w.gateway.sources["reelix"] = source
    outcome: dict[str, Release | BaseException] = {}

    def read() -> None:
        try:
            outcome["release"] = w.gateway.exchange(exchange)
        except BaseException as exc:  # noqa: BLE001 - examined by the test
            outcome["error"] = exc

    reader = threading.Thread(target=read)
    reader.start()
    assert source.reading.wait(timeout=30)
    change()
    source.go_on.set()
    reader.join(timeout=60)
    assert not reader.is_alive()
    return outcome


def _released_about(accord: Accord, person: str) -> int:
    """How many releases the ledger holds about ``person``."""
    leaves = accord.ledger.leaves_about(person_ref("reelix", person))
    return sum(1 for leaf in leaves if leaf.get("kind") == "release")


def test_a_withdrawal_during_a_bulk_read_keeps_the_person_out_of_it(w: World) -> None:
    exchange = Exchange(watch_history(), w.tokens["chirp"], "watch_events")
    # A first read keeps the allowed people (m1, m3, m5) for the next.
    first = w.gateway.exchange(exchange)
    assert first.people == 3
    before = _released_about(w.accord, "m1")
    # The withdrawal is committed while the rows are being read.
    outcome = read_while(w, exchange, lambda: w.accord.withdraw("k-m1-1", AT))
    if "error" in outcome:
        assert isinstance(outcome["error"], AccordError)
        assert "changed while they were read" in str(outcome["error"])
    else:
        release = outcome["release"]
        assert isinstance(release, Release)
        assert release.people == 2
        assert sorted(release.rows) == sorted(
            (e["title_id"],) for e in WATCH if e["member_id"] in {"m3", "m5"}
        )
    assert _released_about(w.accord, "m1") == before


def test_a_person_who_withdrew_before_the_read_began_is_never_in_it(w: World) -> None:
    exchange = Exchange(watch_history(), w.tokens["chirp"], "watch_events")
    assert w.gateway.exchange(exchange).people == 3
    w.accord.withdraw("k-m1-1", AT)
    release = w.gateway.exchange(exchange)
    assert release.people == 2
    assert sorted(release.rows) == sorted(
        (e["title_id"],) for e in WATCH if e["member_id"] in {"m3", "m5"}
    )
