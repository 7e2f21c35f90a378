"""``accord serve --workers 2``: the workers' writes go through one writer.

What an operator running several workers relies on: every exchange either worker acknowledges is
in the ledger at the indexes its receipts name, once, the ledger verifies, every ad either worker
served is recorded with its charge, and the writes were committed by the server's one writer
(which says so as the server stops) rather than by each worker in turn.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import threading
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from accord.ads import tables as ads_t
from accord.scenario.population import CHIRP
from api.world import AD_DAY, World, ad_platform, app_token, bearer, build_world
from databases import fresh_postgres_database
from faults.helpers import LINK, link_read
from serving import accord_serve, check_each_acknowledged_once

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AT = AD_DAY


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_workers_append_through_one_writer(
    tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_SHARED_WRITER", "1")
    with ExitStack() as stack:
        url = stack.enter_context(fresh_postgres_database()) if store == "postgres" else None
        world = stack.enter_context(build_world(tmp_path, database_url=url))
        _two_workers_append_through_one_writer(tmp_path, world, url)


def _two_workers_append_through_one_writer(tmp_path: Path, world: World, url: str | None) -> None:
    members = [m for (m,) in world.sql("reelix", "SELECT member_id FROM linked_accounts")]
    people = ad_platform(world.accord)
    served_ads: list[dict[str, Any]] = []
    secret = secrets.token_urlsafe(32)
    acknowledged: list[dict[str, Any]] = []
    failures: list[str] = []
    with accord_serve(tmp_path, secret, database_url=url, workers=2) as served:
        with httpx.Client(base_url=served.url) as http:
            token = app_token(http, world.chirp, world.chirp_secret)

        def partner(n: int) -> None:
            # A connection each: the kernel spreads them over the two workers.
            with httpx.Client(base_url=served.url, timeout=30) as client:
                for k in range(15):
                    member = members[(7 * n + k) % len(members)]
                    answer = client.post(LINK, json=link_read(member), headers=bearer(token))
                    if answer.status_code == 200:
                        acknowledged.append(answer.json())
                    else:
                        failures.append(answer.text)
                    ad = {
                        "person": people[(n + k) % len(people)],
                        "party": CHIRP,
                        "slots": 1,
                        "context": {"at": AT.isoformat()},
                    }
                    answer = client.post("/v1/ads/request", json=ad, headers=bearer(token))
                    if answer.status_code == 200:
                        served_ads.append(answer.json())
                    else:
                        failures.append(answer.text)

        threads = [threading.Thread(target=partner, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        process = served.process
    process.wait(timeout=60)
    assert failures == []
    assert len(acknowledged) == 8 * 15
    report = world.accord.ledger.verify()
    assert report.ok, report.problems
    check_each_acknowledged_once(world.accord.engine, acknowledged)
    shown = [ad for answer in served_ads for ad in answer["ads"]]
    assert shown
    with world.accord.engine.connect() as conn:
        recorded = conn.execute(select(func.count()).select_from(ads_t.impressions)).scalar()
        spent = conn.execute(select(func.sum(ads_t.spend.c.amount_micros))).scalar()
    assert recorded == len(shown)
    assert spent == sum(ad["price_micros"] for ad in shown)
    said = re.search(
        r"committed ([\d,]+) of their groups of ledger appends in ([\d,]+) commits, "
        r"and ([\d,]+) groups of ad impressions in ([\d,]+)",
        served.log,
    )
    assert said, served.log
    groups, commits, ad_groups, ad_commits = (int(n.replace(",", "")) for n in said.groups())
    # Each worker groups its own exchanges' appends before sending them, and the writer
    # commits what is waiting from both in one commit.
    assert 1 <= commits <= groups <= len(acknowledged)
    assert 1 <= ad_commits <= ad_groups <= len(served_ads)


def _workers_of(pid: int) -> list[int]:
    """The worker processes a server started (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def test_the_workers_stop_when_their_server_is_killed(tmp_path: Path) -> None:
    """``accord serve --workers 2`` SIGKILLed: its workers do not serve on alone from their
    own sockets; each is told to stop, and does."""
    with build_world(tmp_path), accord_serve(tmp_path, secrets.token_urlsafe(32), workers=2) as s:
        workers = _workers_of(s.process.pid)
        assert len(workers) == 2
        s.process.send_signal(signal.SIGKILL)
        s.process.wait(timeout=30)
        try:
            deadline = time.monotonic() + 30
            while any(Path(f"/proc/{w}").exists() for w in workers):
                assert time.monotonic() < deadline, "a worker served on after its server died"
                time.sleep(0.1)
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"{s.url}/healthz", timeout=2)
        finally:
            for worker in workers:  # none left holding the server's port or its log's pipe
                with suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGKILL)
