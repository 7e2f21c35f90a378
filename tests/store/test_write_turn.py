"""Writers to one SQLite file take turns on a lock the system hands over at once, across
processes (``flock``) and threads, instead of SQLite's sleeping retries."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from accord.store.engine import make_engine, write_turn

TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("taken")
else:
    print("free")
"""


def other_process_finds(lock: Path) -> str:
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", TRY_LOCK, str(lock)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_another_process_waits_while_the_turn_is_held(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{database}")
    lock = Path(f"{database}-writers.lock")
    with write_turn(engine):
        assert other_process_finds(lock) == "taken"
    assert other_process_finds(lock) == "free"
    engine.dispose()


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    inside = 0
    most = 0
    guard = threading.Lock()
    started = threading.Barrier(4)

    def write() -> None:
        nonlocal inside, most
        started.wait()
        for _ in range(50):
            with write_turn(engine):
                with guard:
                    inside += 1
                    most = max(most, inside)
                os.sched_yield()
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1
    engine.dispose()


def test_a_database_in_memory_takes_no_lock(tmp_path: Path) -> None:
    memory = make_engine("sqlite://")
    with write_turn(memory), write_turn(memory):  # nothing held: it does not wait on itself
        pass
    assert not list(tmp_path.iterdir())


def test_the_lock_is_released_when_the_write_fails(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{database}")
    with pytest.raises(RuntimeError), write_turn(engine):
        raise RuntimeError("the write failed")
    fd = os.open(f"{database}-writers.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
    finally:
        os.close(fd)
    engine.dispose()


def test_a_writer_holding_the_turn_may_take_it_again(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{database}")
    lock = Path(f"{database}-writers.lock")
    with write_turn(engine):
        with write_turn(engine):
            assert other_process_finds(lock) == "taken"
        # Leaving the inner turn keeps the outer one.
        assert other_process_finds(lock) == "taken"
    assert other_process_finds(lock) == "free"
    engine.dispose()


def test_engines_on_one_file_share_a_turn(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    first = make_engine(f"sqlite:///{database}")
    second = make_engine(f"sqlite:///{database}")
    order: list[str] = []

    def other() -> None:
        with write_turn(second):
            order.append("second")

    with write_turn(first):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.2)
        order.append("first")
    thread.join()
    assert order == ["first", "second"]
    first.dispose()
    second.dispose()


def _open_lock_files(lock: Path) -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(lock.resolve()))


def test_the_lock_file_is_closed_once_its_engines_are_gone(tmp_path: Path) -> None:
    """A process opening many stores (tests, a tool run over folders) keeps no lock file open
    past the engines that wrote to it."""
    import gc

    database = tmp_path / "store.db"
    lock = Path(f"{database}-writers.lock")
    engine = make_engine(f"sqlite:///{database}")
    with write_turn(engine):
        pass
    assert _open_lock_files(lock) == 1
    engine.dispose()
    del engine
    gc.collect()
    assert _open_lock_files(lock) == 0
