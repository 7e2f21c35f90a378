"""The disk under the ledger fills up while ``accord serve`` is serving, then frees.

The server's file-size limit (``RLIMIT_FSIZE``, set from outside with ``prlimit(2)``) is taken
down to zero: every write that would grow a file fails (``EFBIG``), as on a disk with no space
left, while reads go on. Python ignores ``SIGXFSZ``, so the write fails instead of killing the
process, and SQLite reports it as it reports a full disk. A release then fails with a 503
problem document, nothing is answered or logged, the server's log names the ledger's write and
the disk, the ledger still verifies, and once the limit is lifted the same release goes through
without a restart.
"""

from __future__ import annotations

import re
import resource
import secrets
from pathlib import Path

import httpx
import pytest

from api.world import app_token, bearer, build_world
from faults.helpers import LINK, assert_logged, assert_verifies, link_read, releases_from
from serving import accord_serve

pytestmark = pytest.mark.integration


def test_a_full_disk_fails_the_release_and_work_resumes_when_space_returns(tmp_path: Path) -> None:
    with build_world(tmp_path) as world:
        ledger = world.accord.ledger
        with (
            accord_serve(tmp_path, secrets.token_urlsafe(32)) as served,
            httpx.Client(base_url=served.url, timeout=60) as http,
        ):
            token = bearer(app_token(http, world.chirp, world.chirp_secret))
            first = http.post(LINK, json=link_read("r0000001"), headers=token)
            assert first.status_code == 200, first.text
            start = ledger.head().size
            pid = served.process.pid
            soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))  # the disk is full
            try:
                for member in ("r0000001", "r0000002", "r0000003"):
                    full = http.post(LINK, json=link_read(member), headers=token)
                    assert full.status_code == 503, full.text
                    assert full.headers["content-type"] == "application/problem+json"
                    assert "nothing was released" in full.json()["detail"]
                    assert "rows" not in full.json()
                    assert "Traceback" not in full.text
            finally:
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))  # space returns
            assert ledger.head().size == start  # nothing logged while full
            assert_verifies(ledger)
            again = http.post(LINK, json=link_read("r0000001"), headers=token)
            assert again.status_code == 200, again.text
            assert again.json()["rows"] == first.json()["rows"]
        # The server said why, in its own log: the disk, not a vague failure.
        # SQLite says "disk I/O error" for a write refused past the limit (EFBIG), and
        # "database or disk is full" for ENOSPC.
        assert re.search(
            r"appending to the ledger failed: .*(disk I/O error|database or disk is full)",
            served.log,
        )
        assert assert_logged(ledger, [again.json()]) == 1
        assert len(releases_from(ledger, start)) == 1
        assert_verifies(ledger)
