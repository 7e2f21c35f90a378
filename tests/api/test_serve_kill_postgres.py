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
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from api.world import app_token, bearer, build_world
from databases import fresh_postgres_database
from serving import accord_serve

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.slow]

LINK = "/v1/agreements/chirp-reelix/clauses/account-link/exchanges"


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
                    body = {
                        "collection": "linked_accounts",
                        "purpose": "essential.service.authentication",
                        "categories": ["user.account.linked"],
                        "subjects": {"kind": "people", "people": [member]},
                    }
                    k += 1
                    try:
                        r = clients[side].post(LINK, json=body, headers=bearer(token))
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
        with world.accord.engine.connect() as conn:
            rows = conn.execute(text("SELECT idx, leaf_hash FROM ledger_leaves"))
            stored = {int(idx): bytes(hashed) for idx, hashed in rows}
        counts = Counter(stored.values())
        indexes: list[int] = []
        assert acknowledged
        for answer in acknowledged:
            assert len(answer["receipts"]) == 2  # the decision and the release
            for receipt in answer["receipts"]:
                # The entry is in the log, at the index its receipt names, and only there.
                assert stored[receipt["index"]].hex() == receipt["leaf_hash"]
                assert counts[bytes.fromhex(receipt["leaf_hash"])] == 1
                indexes.append(receipt["index"])
        assert len(indexes) == len(set(indexes))  # no index acknowledged twice
        assert len(stored) == ledger.head().size
