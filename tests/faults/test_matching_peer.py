"""A matching partner (``accord psi run --theirs http://...``) that stalls or hangs up.

The partner here is a socket the test controls: it takes the connection and the request, then
either never answers (a stalled server, a dropped network) or closes the connection (a crashed
one). The run ends with an error that says which, after the ``--timeout`` given and not never;
no matched people are written; and the failure is in our ledger after the release of our blinded
identifiers (which the partner may have received), so an auditor sees the match was abandoned.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.pets.psi.cli import app
from accord.service import Accord
from faults.helpers import assert_verifies
from pets.psi_world import store
from pets.test_psi_cli import args

pytestmark = pytest.mark.integration

HOLD = 60.0
"""The longest a stalled peer holds a connection: a run that ignored its timeout fails the test
(on the wrong message) instead of hanging it."""


@contextmanager
def peer(*, answer: bool) -> Iterator[str]:
    """A partner's address that reads each request, then stalls (``answer`` False) or hangs up
    at once (``answer`` True: it answers with nothing)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)  # the request's head (and maybe its body)
                if not answer:
                    done.wait(HOLD)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=HOLD + 5)


def _run(folder: Path, url: str) -> tuple[int, str, Path]:
    out = folder / "matched.txt"
    arguments = args(folder, url, "--token", "t0ken", "--timeout", "1", "--out", str(out))
    result = CliRunner().invoke(app, arguments)
    return result.exit_code, result.output, out


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (False, "did not answer within 1 s"),  # stalls: the connection open, no answer
        (True, "hung up without answering"),  # disconnects: the connection closed
    ],
)
def test_a_peer_that_stalls_or_hangs_up_ends_the_run_with_a_clear_error(
    tmp_path: Path, answer: bool, said: str
) -> None:
    with store(tmp_path) as accord:
        start = accord.ledger.head().size
    with peer(answer=answer) as url:
        code, output, out = _run(tmp_path, url)
    assert code == 1, output
    assert said in " ".join(output.split())
    assert "the match was abandoned" in " ".join(output.split())
    assert "Traceback" not in output
    assert not out.exists()  # no one is reported matched
    with Accord.open(data_dir=tmp_path) as accord:
        entries = [accord.ledger.leaf(i).entry() for i in range(start, accord.ledger.head().size)]
        assert_verifies(accord.ledger)
    kinds = [(e["kind"], e.get("allowed")) for e in entries]
    # The decision and the release of our blinded identifiers, then the match's failure.
    assert kinds == [("decision", True), ("release", None), ("decision", False)], kinds
    failure = entries[-1]
    assert failure["rules"] == ["psi:failed"]
    assert said in failure["reason"]
