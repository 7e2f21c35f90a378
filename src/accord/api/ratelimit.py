"""Each partner's rate limit in a worker: at most N requests in any moving window of W seconds.

The limit is written as the ``limits`` package parses it (``1200/minute``). The hits are kept
here, one deque of instants per partner: counting a hit drops those that left the window and
appends one, with no timer thread and no list shifted at every hit (``limits``' in-memory
storage starts a thread every 10 ms to expire entries and inserts each hit at the front of a
list as long as the limit).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from limits import RateLimitItem


class MovingWindow:
    """Hits per key over a moving window; thread-safe (a worker serves from a thread pool)."""

    def __init__(self, limit: RateLimitItem) -> None:
        self.limit = limit
        self.amount = limit.amount
        self.seconds = float(limit.get_expiry())
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, at: float | None = None) -> float | None:
        """Count a hit for ``key`` at ``at`` (monotonic seconds, default now) if the limit allows
        it, and return None; over the limit, count nothing and return the seconds until a hit
        would be allowed again."""
        moment = time.monotonic() if at is None else at
        horizon = moment - self.seconds
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] < horizon:
                hits.popleft()
            if len(hits) >= self.amount:
                return hits[0] - horizon
            hits.append(moment)
            return None
