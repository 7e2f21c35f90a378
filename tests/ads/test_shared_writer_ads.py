"""Ad requests' impressions and charges recorded by a server's shared writer
(:mod:`accord.store.writer`, the ads store's job :func:`accord.ads.store.record_many`).

Two ad servers, as two workers of one ``accord serve`` run them, serve the same people at once
through one writer: every impression and charge they answered with is recorded, once, the
workers themselves committed nothing, and what they served is what one server alone serves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, func, select

from accord.ads import serving
from accord.ads import tables as ads_t
from accord.ads.market import Placement
from accord.ads.serving import AdServer
from accord.ads.store import RECORD_JOB, AdsStore, record_many
from accord.errors import InvalidInput
from accord.service import Accord
from accord.store.engine import make_engine
from accord.store.writer import SharedWriter, WriterAddress, WriterClient
from ads.test_serving import AT, PEOPLE, platform

pytestmark = pytest.mark.integration


@pytest.fixture
def accord(tmp_path: Path) -> Iterator[Accord]:
    with Accord.open(None, tmp_path / "accord") as opened:
        yield opened


def _recorded(store: AdsStore) -> tuple[int, int]:
    with store.engine.connect() as c:
        shown = c.execute(select(func.count()).select_from(ads_t.impressions)).scalar_one()
        spent = c.execute(select(func.coalesce(func.sum(ads_t.spend.c.amount_micros), 0)))
        return int(shown), int(spent.scalar_one())


def test_two_workers_ad_requests_are_recorded_by_the_shared_writer(
    accord: Accord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving, "SYNC_SECONDS", 1e9)
    store = platform(accord)
    # The writer on an engine of its own, as in the server's own process.
    writer_engine = make_engine(str(accord.engine.url))
    commits = 0

    def count(_conn: Connection) -> None:
        nonlocal commits
        commits += 1

    with SharedWriter({RECORD_JOB: record_many(writer_engine)}) as writer:
        workers = [
            AdServer(AdsStore(accord.engine, "chirp", writer=WriterClient(writer.address)))
            for _ in range(2)
        ]
        for worker in workers:
            worker.market.pacer.rate[:] = 1.0
        answers: list[list[Placement]] = []
        lock = threading.Lock()

        def ask(worker: AdServer, person: str) -> None:
            placed = worker.serve(person, 1, at=AT)
            with lock:
                answers.append(placed)

        event.listen(accord.engine, "commit", count)
        threads = [
            threading.Thread(target=ask, args=(workers[n % 2], person))
            for n, person in enumerate(PEOPLE * 2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        event.remove(accord.engine, "commit", count)
        assert writer.answered[RECORD_JOB] >= 2  # each worker's groups went through it
    writer_engine.dispose()
    assert commits == 0  # the workers committed nothing themselves
    placements = [p for placed in answers for p in placed]
    assert placements
    assert _recorded(store) == (len(placements), sum(p.price for p in placements))
    request_ids = [p.request_id for p in placements]
    assert len(request_ids) == len(set(request_ids))


def test_a_worker_that_cannot_reach_the_writer_records_by_itself(
    accord: Accord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving, "SYNC_SECONDS", 1e9)
    store = platform(accord)
    nowhere = WriterAddress(str(tmp_path / "none" / "socket"), b"k" * 32)
    worker = AdServer(AdsStore(accord.engine, "chirp", writer=WriterClient(nowhere)))
    worker.market.pacer.rate[:] = 1.0
    placed = [p for person in PEOPLE for p in worker.serve(person, 1, at=AT)]
    assert placed
    assert _recorded(store) == (len(placed), sum(p.price for p in placed))


def test_the_record_job_refuses_what_is_not_impressions_and_records_the_rest(
    accord: Accord,
) -> None:
    platform(accord)
    job = record_many(accord.engine)
    out = job([("rows", "charges"), ([], []), None, ([("too", "short")], [])])
    assert isinstance(out[0], InvalidInput)
    assert out[1] == (0, 0)
    assert isinstance(out[2], InvalidInput)
    assert isinstance(out[3], InvalidInput)


def test_a_worker_serves_through_the_writer_what_a_server_alone_serves(tmp_path: Path) -> None:
    """What a worker serves through the writer is what a server alone serves: the same
    placements, prices and records for the same requests in the same order."""
    with ExitStack() as stack:
        via = stack.enter_context(Accord.open(None, tmp_path / "via"))
        alone = stack.enter_context(Accord.open(None, tmp_path / "alone"))
        stores = platform(via), platform(alone)
        writer = stack.enter_context(SharedWriter({RECORD_JOB: record_many(via.engine)}))
        through = AdServer(AdsStore(via.engine, "chirp", writer=WriterClient(writer.address)))
        by_itself = AdServer(stores[1])
        for server in (through, by_itself):
            server.market.pacer.rate[:] = 1.0
        for slots in (1, 2):
            for person in PEOPLE:
                got = through.serve(person, slots, at=AT)
                expected = by_itself.serve(person, slots, at=AT)
                assert [(p.slot, p.campaign.id, p.price) for p in got] == [
                    (p.slot, p.campaign.id, p.price) for p in expected
                ]
        assert _recorded(stores[0]) == _recorded(stores[1])
