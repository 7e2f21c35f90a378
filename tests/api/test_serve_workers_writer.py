"""``accord serve --workers 2``: the workers' ledger appends go through one writer.

What an operator running several workers relies on: every exchange either worker acknowledges is
in the ledger at the indexes its receipts name, once, the ledger verifies, and the appends were
committed by the server's one writer (which says so as the server stops) rather than by each
worker in turn.
"""

from __future__ import annotations

import re
import secrets
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.world import app_token, bearer, build_world
from serving import LINK, accord_serve, check_each_acknowledged_once, link_read

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_two_workers_append_through_one_writer(tmp_path: Path) -> None:
    with build_world(tmp_path) as world:
        members = [m for (m,) in world.sql("reelix", "SELECT member_id FROM linked_accounts")]
        secret = secrets.token_urlsafe(32)
        acknowledged: list[dict[str, Any]] = []
        failures: list[str] = []
        with accord_serve(tmp_path, secret, workers=2) as served:
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
        said = re.search(r"ledger writer committed ([\d,]+) appends in ([\d,]+) groups", served.log)
        assert said, served.log
        appends, groups = (int(n.replace(",", "")) for n in said.groups())
        # Every exchange's append went through the writer (the token's entry too, if any).
        assert appends >= len(acknowledged)
        # Eight partners at once: appends waiting together were committed together.
        assert groups < appends
