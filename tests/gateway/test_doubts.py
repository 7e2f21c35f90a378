"""Releases in doubt outlive the process that held them: the journal of
:mod:`accord.gateway.doubts`, on its own and under a gateway whose process is killed."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accord.gateway import RELEASE_UNDELIVERED_RULE, Exchange, undone_release
from accord.gateway.doubts import Doubt, Doubts, journals_of
from accord.ledger.entries import DecisionEntry
from accord.ledger.results import Receipt
from accord.store.engine import store_identity
from gateway.helpers import C1, FRIEND_PICKER
from gateway.world import world

pytestmark = pytest.mark.integration


def _doubt(n: int) -> Doubt:
    def entry(rule: str, about: tuple[str, ...]) -> DecisionEntry:
        return DecisionEntry(
            agreement="chirp-reelix",
            clause="friend-picker",
            purpose="functional.service",
            categories=("user.social",),
            reason=f"Refused: the release logged at index {n} was never received; nothing was "
            "released.",
            people=-1,
            about=about,
            allowed=False,
            rules=(rule,),
            recipient="reelix",
            action="read",
            at=datetime(2026, 12, 6, 12, n % 60, tzinfo=UTC),
            client="app-1",
        )

    return Doubt(
        f"d{n}",
        (Receipt(n - 1, bytes([n % 256]) * 32, n + 1), Receipt(n, bytes([1]) * 32, n + 1)),
        entry(RELEASE_UNDELIVERED_RULE, (f"chirp/c{n}", "chirp/c0")),
        entry("gateway:error", ()),
    )


def test_a_doubt_reads_back_as_it_was_written() -> None:
    doubt = _doubt(7)
    again = Doubt.from_json(doubt.to_json())
    assert again == doubt
    assert again.held.encode() == doubt.held.encode()  # the same leaf bytes, once logged


def test_a_live_process_s_doubts_stay_its_own(tmp_path: Path) -> None:
    mine = Doubts(tmp_path)
    mine.add(_doubt(1))
    other = Doubts(tmp_path)  # its journal is locked: its process is alive
    assert other.take() == []
    assert [d.id for d in mine.take()] == ["d1"]
    mine.close()
    other.close()


def test_a_process_gone_leaves_its_unsettled_doubts_to_the_next(tmp_path: Path) -> None:
    gone = Doubts(tmp_path)
    for n in (1, 2, 3):
        gone.add(_doubt(n))
    taken = gone.take()
    gone.settled(taken[1])
    gone.back([taken[0], taken[2]])
    gone.close()  # as the kernel does when a process ends
    (left,) = list(tmp_path.iterdir())
    heir = Doubts(tmp_path)
    assert heir  # adopted when made: its gateway's first exchange settles them
    assert [d.id for d in heir.take()] == ["d1", "d3"]
    # The dead one's journal is gone, the doubts now in the heir's.
    assert not left.exists()
    (journal,) = list(tmp_path.iterdir())
    assert journal.read_bytes().count(b'"doubt"') == 2
    heir.close()


def test_an_orphan_is_adopted_once_by_adopters_racing(tmp_path: Path) -> None:
    for round_ in range(5):
        folder = tmp_path / str(round_)
        gone = Doubts(folder)
        gone.add(_doubt(round_ + 1))
        gone.close()
        heirs = _adopting_at_once(folder, 4)
        adopted = [d.id for heir in heirs for d in heir.take()]
        assert adopted == [f"d{round_ + 1}"]
        for heir in heirs:
            heir.close()


def _adopting_at_once(folder: Path, n: int) -> list[Doubts]:
    """``n`` gateways' doubts made at once over ``folder``, each in its own thread."""
    start = threading.Barrier(n)
    heirs: list[Doubts] = []
    lock = threading.Lock()

    def adopt() -> None:
        start.wait()
        heir = Doubts(folder)
        with lock:
            heirs.append(heir)

    threads = [threading.Thread(target=adopt) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return heirs


def test_settling_every_doubt_empties_the_journal(tmp_path: Path) -> None:
    doubts = Doubts(tmp_path)
    doubts.add(_doubt(1))
    doubts.add(_doubt(2))
    first, second = doubts.take()
    doubts.settled(first)
    (journal,) = list(tmp_path.iterdir())
    assert journal.stat().st_size > 0  # the second is still open, though taken
    doubts.settled(second)
    assert journal.stat().st_size == 0
    doubts.close()
    assert Doubts(tmp_path).take() == []


def test_a_line_cut_short_is_skipped_and_the_rest_adopted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = Doubts(tmp_path)
    gone.add(_doubt(1))
    gone.add(_doubt(2))
    gone.close()
    (journal,) = list(tmp_path.iterdir())
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - 40])  # the process ended mid-line
    with caplog.at_level(logging.WARNING, logger="accord.gateway"):
        heir = Doubts(tmp_path)
    assert [d.id for d in heir.take()] == ["d1"]
    assert "line 2 of the journal of doubts" in caplog.text
    heir.close()


def test_a_journal_that_cannot_be_written_keeps_the_doubt_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "doubts"
    blocked.write_text("a file where the folder should be")
    doubts = Doubts(blocked)
    with caplog.at_level(logging.ERROR, logger="accord.gateway"):
        doubts.add(_doubt(4))
    assert [d.id for d in doubts.take()] == ["d4"]
    assert "kept in this process's memory only" in caplog.text


# -- a serving process killed --------------------------------------------------------------------

_CHILD = """
import os, signal, sqlite3, sys
from pathlib import Path
from accord.gateway import Exchange, ReleaseInDoubt
from faults.helpers import commit_failing_after_the_release
from gateway.helpers import C1, FRIEND_PICKER
from gateway.world import world
import pytest

with world(Path(sys.argv[1]), populate=False) as w:
    patch = pytest.MonkeyPatch()

    def down(receipts):
        raise sqlite3.OperationalError("unable to open database file")

    # The store stores the release, loses the acknowledgement, then answers nothing more.
    commit_failing_after_the_release(
        patch,
        w.accord,
        stored=True,
        error=sqlite3.OperationalError("disk I/O error"),
        then=lambda: patch.setattr(w.accord.ledger, "holds", down),
    )
    try:
        w.gateway.exchange(Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1))
    except ReleaseInDoubt:
        print("in doubt", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the worker dies before the store is back
"""


def test_a_release_in_doubt_when_its_worker_is_killed_is_noted_by_the_next(
    built_world: Path, tmp_path: Path
) -> None:
    shutil.copytree(built_world, tmp_path, dirs_exist_ok=True)
    with world(tmp_path, populate=False) as w:
        size = w.accord.ledger.head().size
    tests = Path(__file__).parents[1]
    path = os.pathsep.join(filter(None, [str(tests), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    child = subprocess.run(  # noqa: S603 - this interpreter, the test's own script
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.strip() == "in doubt"
    # The worker died holding the release: only its journal says so.
    with world(tmp_path, populate=False) as w:
        ledger = w.accord.ledger
        entries = [ledger.leaf(i).entry() for i in range(size, ledger.head().size)]
        assert [e["kind"] for e in entries] == ["decision", "release"]
        # The next worker's first exchange notes it, then is served.
        w.gateway.exchange(Exchange(FRIEND_PICKER, w.tokens["reelix"], "friendships", where=C1))
        entries = [ledger.leaf(i).entry() for i in range(size, ledger.head().size)]
        assert [(e["kind"], e.get("rules")) for e in entries] == [
            ("decision", ["clause:chirp-reelix/friend-picker:read"]),
            ("release", None),
            ("decision", [RELEASE_UNDELIVERED_RULE]),
            ("decision", ["clause:chirp-reelix/friend-picker:read"]),
            ("release", None),
        ]
        assert undone_release(entries[2]) == size + 1
        assert ledger.verify(workers=1).ok
        # The dead worker's journal was in the store's own folder; nothing is left there.
        journals = journals_of(tmp_path / "doubts", store_identity(w.accord.engine))
    assert [p.suffix for p in journals.iterdir()] == [".jsonl"]  # the heir's own
    assert Doubts(journals).take() == []


def test_each_store_has_its_own_journals_in_a_data_folder(tmp_path: Path) -> None:
    """Two stores used with one data folder: neither's doubts are settled against the other's
    ledger."""
    one = journals_of(tmp_path, "sqlite:////srv/a/accord.db")
    other = journals_of(tmp_path, "postgresql+psycopg://db.internal/accord")
    assert one != other
    assert one == journals_of(tmp_path, "sqlite:////srv/a/accord.db")
    gone = Doubts(one)
    gone.add(_doubt(5))
    gone.close()
    assert Doubts(other).take() == []
    assert [d.id for d in Doubts(one).take()] == ["d5"]
