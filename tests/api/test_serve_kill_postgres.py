"""Two `accord serve` processes on one PostgreSQL store under concurrent load, one killed.

What a platform running several replicas must be able to rely on: whatever happens to one
replica, the ledger verifies, every exchange a partner saw acknowledged has its entries in the
log exactly once, at the indexes its receipts name, and no entry is written twice.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from api.world import app_token, bearer, build_world
from databases import fresh_postgres_database
from faults.helpers import LINK, link_read
from serving import accord_serve, check_each_acknowledged_once

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.slow]


def test_two_servers_on_one_postgres_store_survive_a_sigkill(tmp_path: Path) -> None:
    with fresh_postgres_database() as url, build_world(tmp_path, database_url=url) as world:
        members = [m for (m,) in world.sql("reelix", "SELECT member_id FROM linked_accounts")]
        secret = secrets.token_urlsafe(32)
        with (
            accord_serve(tmp_path, secret, database_url=url) as first,
            accord_serve(tmp_path, secret, database_url=url) as second,
        ):
            one, two, killed = first.url, second.url, first.process
            with httpx.Client(base_url=one) as http:
                token = app_token(http, world.chirp, world.chirp_secret)
            acknowledged: list[dict[str, Any]] = []
            lock = threading.Lock()
            stop = threading.Event()
            served = [0, 0]

            def partner(n: int) -> None:
                bases = (one, two)
                clients = [httpx.Client(base_url=b, timeout=30) for b in bases]
                k = 0
                while not stop.is_set():
                    side = (n + k) % 2
                    member = members[(7 * n + k) % len(members)]
                    k += 1
                    try:
                        r = clients[side].post(LINK, json=link_read(member), headers=bearer(token))
                    except httpx.HTTPError:
                        continue  # not acknowledged: the server died with it
                    if r.status_code == 200:
                        with lock:
                            acknowledged.append(r.json())
                            served[side] += 1
                for client in clients:
                    client.close()

            threads = [threading.Thread(target=partner, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            # Killed mid-load, once both have acknowledged some exchanges; the other goes on.
            while min(served) < 40:
                time.sleep(0.05)
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=30)
            after = served[1]
            while served[1] < after + 40:
                time.sleep(0.05)
            stop.set()
            for thread in threads:
                thread.join()
        ledger = world.accord.ledger
        report = ledger.verify()
        assert report.ok, report.problems
        check_each_acknowledged_once(world.accord.engine, acknowledged)
        assert ledger.head().size == _leaf_count(world.accord.engine)


def _leaf_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM ledger_leaves")).scalar_one())
