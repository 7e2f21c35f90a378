"""Signing checkpoints as the log grows, apart from anyone reading it.

A page that shows a person their entries only reads: it proves them under the latest signed
checkpoint and shows those appended since as pending. Checkpoints are signed by a maintenance
step instead: :meth:`Checkpointer.tick` signs one when the log has grown past the latest (``accord
ledger checkpoint`` signs one at once), and the server runs a :class:`Checkpointer` that ticks
when it starts and then every so often while it serves.
"""

from __future__ import annotations

import logging
import threading

from accord.errors import AccordError
from accord.ledger.checkpoint import SignedCheckpoint
from accord.ledger.log import Ledger

log = logging.getLogger("accord.ledger")


class Checkpointer:
    """Signs a checkpoint of ``ledger`` whenever it has grown, on entering and then every
    ``seconds`` in a thread of its own, until left."""

    def __init__(self, ledger: Ledger, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, not {seconds}")
        self.ledger = ledger
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="accord-ledger-checkpoints", daemon=True
        )

    def tick(self) -> SignedCheckpoint | None:
        """Sign a checkpoint if the log has grown past the latest one; what was signed. A failure
        is logged, not raised: the next tick tries again."""
        try:
            return self.ledger.checkpoint_if_grown()
        except AccordError as exc:
            log.warning("could not sign a ledger checkpoint: %s", exc)
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            self.tick()

    def __enter__(self) -> Checkpointer:
        self.tick()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
