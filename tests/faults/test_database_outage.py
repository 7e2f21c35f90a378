"""The database stops while the partner API is serving, then comes back.

The API runs over a PostgreSQL store reached through a TCP proxy the test controls: cutting it
closes every connection the server holds and refuses new ones, as a stopped database server
does, without stopping the PostgreSQL server other tests share (a private server would need
``initdb`` for each run, and could only be stopped between statements, not mid-request).

While the link is cut every request is refused with 503 and an RFC 9457 problem document,
nothing is released (no rows answered, no release logged that the partner did not get), and
once the link is restored the same requests are served again, with the ledger whole.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from accord.api import ApiSettings
from accord.gateway import RELEASE_UNDELIVERED_RULE
from accord.ledger.log import Ledger
from accord.scenario.population import REELIX
from api.privacy_helpers import form_of, sign_in
from api.world import World, app_token, bearer, build_world, serving, when_served
from databases import fresh_postgres_database
from faults.helpers import (
    LINK,
    assert_logged,
    assert_verifies,
    commit_failing_after_the_release,
    commit_slow_after_the_release,
    link_read,
    received_releases_from,
    releases_from,
)
from faults.proxy import Proxy, proxy_to

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 503
    assert "nothing was released" in problem["detail"]
    assert "rows" not in problem
    assert "Traceback" not in response.text
    assert "psycopg" not in response.text  # the driver's message stays in the server's log


@contextmanager
def _proxied_database() -> Iterator[tuple[Proxy, str]]:
    """A fresh PostgreSQL database, and its URL through a proxy this test controls."""
    with fresh_postgres_database() as url:
        real = make_url(url)
        with proxy_to(real.host or "127.0.0.1", real.port or 5432) as link:
            yield link, real.set(port=link.port).render_as_string(hide_password=False)


@contextmanager
def _proxied_world(
    tmp_path: Path, settings: ApiSettings | None = None, *, timeout: float = 60
) -> Iterator[tuple[Proxy, World, httpx.Client]]:
    """A world served over a proxied store, and a client for it that waits ``timeout``."""
    with (
        _proxied_database() as (link, proxied),
        build_world(tmp_path, settings, database_url=proxied) as world,
        serving(world.app) as base,
        httpx.Client(base_url=base, timeout=timeout) as http,
    ):
        yield link, world, http


def _stalling_world(tmp_path: Path) -> AbstractContextManager[tuple[Proxy, World, httpx.Client]]:
    """A world served over a proxied store, whose requests have 2 s, and a client for it."""
    # The client's limit is far shorter than a stall, which lasts until the test ends it:
    # without a limit the requests would fail here, not be answered.
    return _proxied_world(tmp_path, ApiSettings(exchange_seconds=2), timeout=20)


def test_requests_while_the_database_is_down_are_refused_and_service_recovers(
    tmp_path: Path,
) -> None:
    with (
        _proxied_database() as (link, proxied),
        build_world(tmp_path, database_url=proxied) as world,
        serving(world.app) as base,
    ):
        rows = world.sql("reelix", "SELECT member_id FROM linked_accounts")
        members = [m for (m,) in rows]
        ledger = world.accord.ledger
        with httpx.Client(base_url=base, timeout=60) as http:
            token = bearer(app_token(http, world.chirp, world.chirp_secret))
            start = ledger.head().size
            answers: list[httpx.Response] = []
            lock = threading.Lock()
            stop = threading.Event()

            def partner(n: int) -> None:
                with httpx.Client(base_url=base, timeout=60) as own:
                    k = 0
                    while not stop.is_set():
                        member = members[(11 * n + k) % len(members)]
                        k += 1
                        r = own.post(LINK, json=link_read(member), headers=token)
                        with lock:
                            answers.append(r)

            def served() -> int:
                with lock:
                    return sum(r.status_code == 200 for r in answers)

            threads = [threading.Thread(target=partner, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            try:
                while served() < 20:
                    threading.Event().wait(0.02)
                link.cut()  # mid-load: requests are in flight on every connection
                for member in members[:3]:
                    _assert_refused(http.post(LINK, json=link_read(member), headers=token))
                # The other routes too: a token, the app's own page, the registry.
                _assert_refused(
                    http.post(
                        "/oauth/token",
                        data={"grant_type": "client_credentials"},
                        auth=(world.chirp.client_id, world.chirp_secret),
                    )
                )
                _assert_refused(http.get("/v1/app", headers=token))
                _assert_refused(http.get("/v1/agreements"))
                ready = http.get("/readyz")
                assert ready.status_code == 503
                assert ready.headers["content-type"] == "application/problem+json"
                link.restore()
                before = served()
                while served() < before + 20:
                    threading.Event().wait(0.02)
            finally:
                stop.set()
                for thread in threads:
                    thread.join()
            # Served again, from a fresh connection: the same read and readiness.
            again = http.post(LINK, json=link_read(members[0]), headers=token)
            assert again.status_code == 200, again.text
            assert http.get("/readyz").status_code == 200
        ok: list[dict[str, Any]] = []
        for r in answers:
            if r.status_code == 200:
                ok.append(r.json())
            else:
                _assert_refused(r)
        ok.append(again.json())
        # Every acknowledged release is logged, and every release logged was received, but
        # one the cut hid the commit of (noted as never received once the store was back).
        assert assert_logged(ledger, ok) == len(ok)
        assert len(received_releases_from(ledger, start)) == len(ok)
        assert_verifies(ledger)


def test_a_release_whose_commit_the_outage_hid_is_noted_as_never_received(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store goes away in the middle of a release's commit, after storing it: the partner
    is answered that nothing was released, and once the store is back the next exchange first
    notes in the ledger that the release it holds was never received."""
    with _proxied_world(tmp_path) as (link, world, http):
        members = [m for (m,) in world.sql("reelix", "SELECT member_id FROM linked_accounts")]
        ledger = world.accord.ledger
        token = bearer(app_token(http, world.chirp, world.chirp_secret))
        start = ledger.head().size
        commit_failing_after_the_release(
            monkeypatch,
            world.accord,
            stored=True,
            then=link.cut,
            error=psycopg.OperationalError("server closed the connection unexpectedly"),
        )
        _assert_refused(http.post(LINK, json=link_read(members[0]), headers=token))
        monkeypatch.undo()
        _assert_refused(http.post(LINK, json=link_read(members[1]), headers=token))
        link.restore()
        again = http.post(LINK, json=link_read(members[2]), headers=token)
        assert again.status_code == 200, again.text
        _assert_noted_then_served(ledger, start)
        assert assert_logged(ledger, [again.json()]) == 1


def test_an_exchange_held_by_a_stalled_database_is_answered_and_never_logged_as_released(
    tmp_path: Path,
) -> None:
    # A database that hangs keeps its connections open and answers nothing: without a time
    # limit an exchange would wait for as long as it hangs.
    with _stalling_world(tmp_path) as (link, world, http):
        ledger = world.accord.ledger
        token = bearer(app_token(http, world.chirp, world.chirp_secret))
        first = when_served(lambda: http.post(LINK, json=link_read("r0000001"), headers=token))
        assert first.status_code == 200, first.text
        start = ledger.head().size
        link.stall()
        try:
            held = http.post(LINK, json=link_read("r0000002"), headers=token)
        finally:
            link.resume()
        _assert_refused(held)
        assert held.json()["detail"] == (
            "the exchange did not finish within 2 s and was abandoned; nothing was released"
        )
        # The database answers again: the abandoned exchange goes on, and logs that it
        # was abandoned instead of a release nobody received.
        failures: list[dict[str, Any]] = []
        for _ in range(600):
            entries = [ledger.leaf(i).entry() for i in range(start, ledger.head().size)]
            failures = [e for e in entries if "abandoned" in e.get("reason", "")]
            if failures:
                break
            threading.Event().wait(0.1)
        (failure,) = failures
        assert failure["kind"] == "decision"
        assert failure["allowed"] is False
        assert failure["rules"] == ["gateway:error"]
        assert releases_from(ledger, start) == []
        again = when_served(lambda: http.post(LINK, json=link_read("r0000002"), headers=token))
        assert again.status_code == 200, again.text
        assert assert_logged(ledger, [again.json()]) == 1
        assert_verifies(ledger)


def test_a_token_request_held_by_a_stalled_database_is_answered_and_issues_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The token endpoint, and every other route but the exchanges, had no time limit: a client
    # asking for a token waited for as long as the database hung.
    with _stalling_world(tmp_path) as (link, world, http):
        token = bearer(app_token(http, world.chirp, world.chirp_secret))
        tokens = _count_tokens(world)
        caplog.set_level(logging.WARNING, logger="accord.api")
        caplog.clear()
        link.stall()
        try:
            held = http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(world.chirp.client_id, world.chirp_secret),
            )
            page = http.get("/v1/app", headers=token)
            registry = http.get("/v1/agreements")
        finally:
            link.resume()
        for answer in (held, page, registry):
            _assert_refused(answer)
            assert "did not finish within 2 s" in answer.json()["detail"]
        assert "access_token" not in held.json()
        # The database answers again: the abandoned token request goes on, and stores no
        # token (nobody was given it), nor does the page's.
        ended = "a request to /oauth/token abandoned at its deadline ended"
        for _ in range(600):
            if any(r.getMessage().startswith(ended) for r in caplog.records):
                break
            threading.Event().wait(0.1)
        (end,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith(ended)]
        assert end == f"{ended} answering 503 (dropped)"  # it found itself past its time
        assert _count_tokens(world) == tokens
        # Served again: one token more (one that ran past its time is dropped, as above).
        app_token(http, world.chirp, world.chirp_secret)
        assert _count_tokens(world) == tokens + 1


def _count_tokens(world: World) -> int:
    with world.accord.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM api_tokens")).scalar_one())


def test_a_page_s_change_held_by_a_stalled_database_is_answered_and_stored_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A person opting out in the privacy centre while the database hangs is answered 503 at
    # the deadline; their opt-out then went on in its thread once the database answered, and
    # was stored: a change the person was told did not happen. Every session of the store now
    # rolls back past its request's deadline.
    with _stalling_world(tmp_path) as (link, world, http):
        person = "r0000120"
        sign_in(http, REELIX, person)
        form = form_of(when_served(lambda: http.get("/me")).text)
        assert not world.accord.standing(REELIX, person).opted_out
        consents_before = _consent_changes(world, person)
        caplog.set_level(logging.WARNING, logger="accord.api")
        caplog.clear()
        link.stall()
        try:
            held = http.post("/me/opt-out", data={"form": form})
        finally:
            link.resume()
        assert held.status_code == 503, held.text
        assert "did not finish within 2 s" in held.text
        ended = "a request to /me/opt-out abandoned at its deadline ended"
        for _ in range(600):
            if any(r.getMessage().startswith(ended) for r in caplog.records):
                break
            threading.Event().wait(0.1)
        assert any(r.getMessage().startswith(ended) for r in caplog.records)
        # Neither in the records nor in the ledger.
        assert not world.accord.standing(REELIX, person).opted_out
        assert _consent_changes(world, person) == consents_before
        # Served again: the same change, asked again, is made and logged.
        again = when_served(lambda: http.post("/me/opt-out", data={"form": form}))
        assert again.status_code == 303, again.text
        assert world.accord.standing(REELIX, person).opted_out
        assert _consent_changes(world, person)[-1] == "opted_out"


def _consent_changes(world: World, person: str) -> list[str]:
    return [
        str(e["change"])
        for e in world.accord.ledger.leaves_about(f"{REELIX}/{person}")
        if e["kind"] == "consent"
    ]


def test_a_release_committed_after_its_caller_was_answered_503_is_noted_as_never_received(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store takes longer to commit a release's entries than the exchange has left (2 s
    here): the partner is answered 503 at its time, the entries are committed after, and the
    ledger then says the release was never received. The next exchange is served as usual."""
    with (
        build_world(tmp_path, ApiSettings(exchange_seconds=2)) as world,
        serving(world.app) as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        members = [m for (m,) in world.sql("reelix", "SELECT member_id FROM linked_accounts")]
        ledger = world.accord.ledger
        token = bearer(app_token(http, world.chirp, world.chirp_secret))
        start = ledger.head().size
        commit_slow_after_the_release(monkeypatch, world.accord, 3)
        late = http.post(LINK, json=link_read(members[0]), headers=token)
        assert late.status_code == 503
        assert late.json()["type"].endswith("timed-out")
        # The commit ends after the answer; its note follows it.
        deadline = time.monotonic() + 10
        while ledger.head().size < start + 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        monkeypatch.undo()
        again = http.post(LINK, json=link_read(members[1]), headers=token)
        assert again.status_code == 200, again.text
        note = _assert_noted_then_served(ledger, start)
        assert "ran past its time" in note["reason"]


def _assert_noted_then_served(ledger: Ledger, start: int) -> dict[str, Any]:
    """From ``start``: a release, the note that it was never received, then the next exchange
    served; the ledger whole. Returns the note."""
    entries = [ledger.leaf(i).entry() for i in range(start, ledger.head().size)]
    assert [(e["kind"], e.get("rules")) for e in entries] == [
        ("decision", ["clause:chirp-reelix/account-link:read"]),
        ("release", None),
        ("decision", [RELEASE_UNDELIVERED_RULE]),
        ("decision", ["clause:chirp-reelix/account-link:read"]),
        ("release", None),
    ]
    assert f"index {start + 1} was never received" in entries[2]["reason"]
    assert received_releases_from(ledger, start) == [start + 4]
    assert_verifies(ledger)
    return entries[2]
