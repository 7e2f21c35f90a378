"""``accord serve`` as a process of its own, over a world's parties and store, for tests that
need one (a signal, a resource limit, two servers on one store); and a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text


@dataclass
class Served:
    """A running ``accord serve``: its URL, its process, the lines of its log so far."""

    url: str
    process: subprocess.Popen[bytes]
    lines: list[str]

    @property
    def log(self) -> str:
        """The server's log (read through a pipe: a file limit on the server leaves it whole)."""
        return "".join(self.lines)


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def accord_serve(
    folder: Path, secret: str, *, database_url: str | None = None, workers: int = 1
) -> Iterator[Served]:
    """``accord serve`` (one worker, or ``workers``) on a free port over the world built in
    ``folder`` (its store there, or at ``database_url``), answering when yielded."""
    port = free_port()
    store = ["--database-url", database_url] if database_url else []
    process = subprocess.Popen(  # noqa: S603  (our own command, by path)
        [
            str(Path(sys.executable).parent / "accord"),
            "serve",
            "--port",
            str(port),
            "--scenario",
            str(folder / "parties"),
            "--data-dir",
            str(folder / "accord"),
            *store,
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env={
            **os.environ,
            "ACCORD_API_SECRET": secret,
            "ACCORD_API_RATE_LIMIT": "100000000/minute",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(
        target=lambda out: lines.extend(line.decode() for line in out), args=(process.stdout,)
    )
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "".join(lines)
            time.sleep(0.1)
        yield Served(url, process, lines)
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=60)
        reader.join()
        process.stdout.close()


def _leaf_text(engine: Engine, index: int) -> str:
    """A stored leaf's entry, as text, for a failure's message."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT * FROM ledger_leaves WHERE idx = :idx"), {"idx": index}
        ).one()
    return repr(row)[:600]


def check_each_acknowledged_once(engine: Engine, acknowledged: list[dict[str, Any]]) -> None:
    """Every acknowledged exchange's two entries (the decision and the release) are in the
    ledger at the indexes its receipts name, and not written again elsewhere; no index was
    acknowledged twice.

    A decision names nobody, so two exchanges decided in the same microsecond (on two workers)
    log the same bytes at two indexes, as a log may (RFC 6962 hashes each leaf alone). A copy of
    an acknowledged leaf is a write made twice only where no acknowledged exchange names it."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT idx, leaf_hash FROM ledger_leaves"))
        stored = {int(idx): bytes(hashed) for idx, hashed in rows}
    at: dict[bytes, list[int]] = {}
    for index, hashed in stored.items():
        at.setdefault(hashed, []).append(index)
    indexes = [r["index"] for answer in acknowledged for r in answer["receipts"]]
    assert acknowledged
    assert len(indexes) == len(set(indexes))
    named = set(indexes)
    for answer in acknowledged:
        assert len(answer["receipts"]) == 2
        for receipt in answer["receipts"]:
            assert stored[receipt["index"]].hex() == receipt["leaf_hash"]
            same = sorted(at[bytes.fromhex(receipt["leaf_hash"])])
            again = [i for i in same if i not in named]
            assert not again, (
                f"the leaf acknowledged at index {receipt['index']} is also at {again}: "
                f"{[_leaf_text(engine, i) for i in same]}"
            )
