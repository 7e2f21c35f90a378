"""Releases in doubt, kept until the ledger can say what became of them, past the process.

A release is in doubt when the store failed while committing its entries (the commit's
acknowledgement lost), or committed them after its caller was answered 503: the caller was told
that nothing was released, and once the store answers the gateway logs, if the ledger holds the
release, a note that it was never received, else the exchange's failure. Until then the gateway
holds the two entries it may log (:class:`Doubt`).

Held in memory only, a worker that died before the store came back would take them with it, and
the ledger would keep a release nobody noted as never received. So each doubt is also written
to a journal in the data folder (``doubts/``, in a folder of the store's own), one file per
process, created at the first doubt and held with an exclusive ``flock`` for the life of the
process: each line a doubt, or the id of one settled, flushed to disk (``fsync``) before the
exchange is answered. A process that finds
another's journal it can lock (its process is gone: the kernel let go of the lock) adopts the
doubts not settled there into its own journal and removes the file, so the next gateway to start,
or to settle, says what the dead one could not.

A doubt settled in the ledger whose "settled" line the process died before writing is noted
again by whoever adopts it: two notes on one release, rather than none.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import threading
import weakref
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from accord.ledger.entries import DecisionEntry
from accord.ledger.results import Receipt

log = logging.getLogger("accord.gateway")

_SUFFIX = ".jsonl"


@dataclass(frozen=True, slots=True)
class Doubt:
    """A release whose entries' commit failed, or ended after its caller was answered: the
    receipts they have or would have had (the release's last), and the entry to log once the
    store answers, ``held`` if the ledger holds them, ``lost`` if it does not."""

    id: str
    receipts: tuple[Receipt, ...]
    held: DecisionEntry
    lost: DecisionEntry

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "receipts": [[r.index, r.leaf_hash.hex(), r.tree_size] for r in self.receipts],
            "held": _entry_json(self.held),
            "lost": _entry_json(self.lost),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Doubt:
        return cls(
            id=str(data["id"]),
            receipts=tuple(
                Receipt(int(i), bytes.fromhex(h), int(size)) for i, h, size in data["receipts"]
            ),
            held=_entry(data["held"]),
            lost=_entry(data["lost"]),
        )


_TUPLES = ("categories", "about", "rules")


def _entry_json(entry: DecisionEntry) -> dict[str, Any]:
    out: dict[str, Any] = {f.name: getattr(entry, f.name) for f in fields(DecisionEntry)}
    for name in _TUPLES:
        out[name] = list(out[name])
    out["at"] = entry.at.isoformat()
    return out


def _entry(data: dict[str, Any]) -> DecisionEntry:
    values = dict(data)
    for name in _TUPLES:
        values[name] = tuple(values[name])
    values["at"] = datetime.fromisoformat(values["at"])
    return DecisionEntry(**values)


def journals_of(folder: Path, store: str) -> Path:
    """The folder in ``folder`` of the journals of one store's doubts, ``store`` its identity
    (:func:`accord.store.engine.store_identity`): a data folder used with two stores never has
    one's doubts settled against the other's ledger."""
    return folder / hashlib.sha256(store.encode()).hexdigest()[:16]


class Doubts:
    """The doubts of one gateway, oldest first: in memory, and in a journal in ``folder`` if
    given (see the module's text). Safe to use from several threads."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._pending: list[Doubt] = []
        """The doubts waiting to be settled, oldest first."""
        self._open: set[str] = set()
        """The ids of every doubt not settled: those waiting and those taken."""
        self._lock = threading.Lock()
        self._journal: IO[bytes] | None = None
        self._adopt()

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, doubt: Doubt) -> None:
        """Keep ``doubt``; once this returns, it is on disk too (where there is a folder and
        the disk takes it: else in memory only, and the failure is logged)."""
        with self._lock:
            self._pending.append(doubt)
            self._open.add(doubt.id)
            try:
                self._write({"doubt": doubt.to_json()})
            except (OSError, TypeError, ValueError):
                log.exception(
                    "a release in doubt (its note, if the ledger holds it, would be about index "
                    "%d) is kept in this process's memory only: its journal could not be written",
                    doubt.receipts[-1].index,
                )

    def take(self) -> list[Doubt]:
        """Every doubt not yet settled, oldest first, those of processes gone included; each to
        be given back, as :meth:`settled` or with :meth:`back`."""
        self._adopt()
        with self._lock:
            taken, self._pending = self._pending, []
        return taken

    def settled(self, doubt: Doubt) -> None:
        """``doubt``'s entry is in the ledger: it is forgotten."""
        with self._lock:
            self._open.discard(doubt.id)
            try:
                self._write({"done": doubt.id})
            except OSError:
                log.exception("a settled doubt could not be marked so in its journal")
                return
            if not self._open and self._journal is not None:
                # Nothing left to keep: the journal starts over, as small as it can be.
                self._journal.truncate(0)
                _flush(self._journal)

    def back(self, doubts: list[Doubt]) -> None:
        """Give back ``doubts`` the store could not settle yet, before any added since."""
        with self._lock:
            self._pending[:0] = doubts

    def close(self) -> None:
        """Let go of the journal (its doubts not settled stay in it, for another process)."""
        with self._lock:
            journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()

    # -- the journal -------------------------------------------------------------------------------

    def _write(self, record: dict[str, Any]) -> None:
        if self.folder is None:
            return
        journal = self._journal
        if journal is None:
            journal = self._journal = _own_journal(self.folder)
            # Closed (its lock let go) when these doubts are, if not before.
            weakref.finalize(self, journal.close)
        journal.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        _flush(journal)

    def _adopt(self) -> None:
        """Take over the doubts left in the journals of processes that are gone."""
        folder = self.folder
        if folder is None or not folder.is_dir():
            return
        own = Path(self._journal.name).name if self._journal is not None else None
        for path in sorted(folder.glob(f"*{_SUFFIX}")):
            if path.name == own:
                continue
            try:
                orphan = _take_orphan(path)
            except OSError as exc:
                log.warning("could not read the journal of doubts %s: %s", path.name, exc)
                continue
            if orphan is None:
                continue
            handle, left = orphan
            with handle:
                with self._lock:
                    for doubt in left:
                        self._write({"doubt": doubt.to_json()})
                    self._pending[:0] = left
                    self._open.update(d.id for d in left)
                    if self._journal is not None:
                        own = Path(self._journal.name).name
                # Only now that they are in this process's journal is the other one removed,
                # and only then let go of.
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            if left:
                log.warning(
                    "adopted %d release(s) in doubt from %s, left by a process that ended "
                    "before the store could say what became of them",
                    len(left),
                    path.name,
                )


def _own_journal(folder: Path) -> IO[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
    journal = path.open("a+b")
    fcntl.flock(journal.fileno(), fcntl.LOCK_EX)
    return journal


def _flush(journal: IO[bytes]) -> None:
    journal.flush()
    os.fsync(journal.fileno())


def _take_orphan(path: Path) -> tuple[IO[bytes], list[Doubt]] | None:
    """The journal at ``path``, locked, and its doubts not settled, if its process is gone (its
    lock can be taken, and the path still names the file locked: not adopted meanwhile); else
    ``None``. The caller removes the file before it closes it, so no one adopts it twice."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None  # its process is alive
        try:
            same = path.stat().st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            handle.close()
            return None  # adopted by another process meanwhile
        return handle, _unsettled(handle.read().splitlines(), path.name)
    except BaseException:
        handle.close()
        raise


def _unsettled(lines: list[bytes], name: str) -> list[Doubt]:
    doubts: dict[str, Doubt] = {}
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            if "done" in record:
                doubts.pop(str(record["done"]), None)
            else:
                doubt = Doubt.from_json(record["doubt"])
                doubts[doubt.id] = doubt
        except (ValueError, KeyError, TypeError) as exc:
            # A line cut short by the process's end is its last; it was never acknowledged.
            log.warning("line %d of the journal of doubts %s is unreadable: %s", number, name, exc)
    return list(doubts.values())
