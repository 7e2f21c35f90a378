"""Each partner's rate limit: at most N requests in any moving window of W seconds.

The limit is written as the ``limits`` package parses it (``1200/minute``). Two limiters count
the hits:

- :class:`MovingWindow`, the default, counts in one worker's memory, so each worker of
  ``accord serve`` allows a partner the whole limit. It keeps one deque of instants per partner:
  counting a hit drops those that left the window and appends one, with no timer thread and no
  list shifted at every hit (``limits``' in-memory storage starts a thread every 10 ms to expire
  entries and inserts each hit at the front of a list as long as the limit).
- :class:`SharedMovingWindow` counts in Redis through ``limits``' Redis storage and its
  moving-window strategy, so every worker and host behind one Redis shares one window per
  partner. A store that does not answer refuses the request (:class:`RateLimitStoreUnreachable`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from typing import Protocol
from urllib.parse import urlsplit

from limits import RateLimitItem
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.connection import ConnectionPool
from redis.retry import Retry

from accord.api.errors import RateLimitStoreUnreachable

STORE_SCHEMES = ("redis", "rediss")
STORE_TIMEOUT = 1.0
"""Seconds to connect to the store, and to wait for its answer, before refusing the request."""
log = logging.getLogger("accord.api")


class Limiter(Protocol):
    """Counts a partner's hits against one limit."""

    limit: RateLimitItem

    def hit(self, key: str) -> float | None:
        """None if the limit allows a hit for ``key`` now (and it is counted); else the seconds
        until one would be allowed."""
        ...

    def refusing(self, key: str) -> float | None:
        """The seconds until a hit for ``key`` would be allowed, where this limiter already
        knows ``key`` is over the limit; else None. Counts nothing and asks no store."""
        ...

    def close(self) -> None:
        """Let go of any connection."""
        ...


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

    def refusing(self, key: str, at: float | None = None) -> float | None:
        """The seconds until a hit for ``key`` would be allowed at ``at`` (default now), if the
        window is full; else None. Counts nothing."""
        moment = time.monotonic() if at is None else at
        horizon = moment - self.seconds
        with self._lock:
            hits = self._hits.get(key)
            if not hits:
                return None
            while hits and hits[0] < horizon:
                hits.popleft()
            if len(hits) >= self.amount:
                return hits[0] - horizon
            return None

    def close(self) -> None:
        """Nothing to let go of."""


class SharedMovingWindow:
    """Hits per key over a moving window kept in Redis, shared by every limiter on that Redis
    with the same ``prefix``.

    An allowed hit is one round trip (``limits``' moving-window script, run by its hash). A
    refused hit asks when the window frees (a second round trip) and remembers it: until then
    this limiter refuses the key without asking, as no hit can leave the window earlier. A store
    that fails or does not answer within :data:`STORE_TIMEOUT` raises
    :class:`RateLimitStoreUnreachable`; the next hit connects again.
    """

    def __init__(self, limit: RateLimitItem, url: str, prefix: str) -> None:
        self.limit = limit
        self.store = shown(url)
        # Options in the URL's query (socket_timeout=...) take precedence over these. One
        # immediate retry replaces a pooled connection the server closed; redis-py's default
        # (three, backing off up to seconds) would hold requests while the store is down.
        self._pool = ConnectionPool.from_url(
            url,
            socket_connect_timeout=STORE_TIMEOUT,
            socket_timeout=STORE_TIMEOUT,
            retry=Retry(NoBackoff(), 1),
        )
        self._storage = RedisStorage(
            url, connection_pool=self._pool, key_prefix=prefix, wrap_exceptions=True
        )
        self._window = MovingWindowRateLimiter(self._storage)
        self._frees: dict[str, float] = {}
        """Per refused key, the wall-clock instant its window frees."""
        self._failing = False

    def hit(self, key: str) -> float | None:
        """None if the shared window has room for ``key`` (and the hit is counted there); else
        the seconds until it will."""
        now = time.time()
        frees = self._frees.get(key)
        if frees is not None:
            if now < frees:
                return frees - now
            self._frees.pop(key, None)
        try:
            if self._window.hit(self.limit, key):
                self._failing = False
                return None
            frees, room = self._window.get_window_stats(self.limit, key)
        except StorageError as exc:
            if not self._failing:  # once per outage, not once per request
                log.warning("rate-limit store %s failed: %r", self.store, exc.storage_error)
            self._failing = True
            raise RateLimitStoreUnreachable(self.store) from exc
        self._failing = False
        if room > 0:  # hits left the window between the two round trips
            return 0.0
        self._frees[key] = frees
        return max(0.0, frees - time.time())

    def refusing(self, key: str) -> float | None:
        """The seconds until the shared window has room for ``key``, where a hit this limiter
        counted found it full and it has not freed since; else None (the store is not asked:
        another worker's hits are seen at this limiter's next :meth:`hit`)."""
        frees = self._frees.get(key)
        if frees is None:
            return None
        now = time.time()
        return frees - now if now < frees else None

    def close(self) -> None:
        """Close the connections to the store."""
        self._pool.disconnect()


def limiter(limit: RateLimitItem, store: str | None, prefix: str) -> Limiter:
    """A limiter in this worker's memory (``store`` None) or in the Redis at ``store``."""
    if store is None:
        return MovingWindow(limit)
    return SharedMovingWindow(limit, store, prefix)


def deployment_prefix(identity: str) -> str:
    """A key prefix for the deployment named by ``identity`` (its store's URL, say), short and
    without the identity's text."""
    return "accord:" + hashlib.sha256(identity.encode()).hexdigest()[:16]


def shown(url: str) -> str:
    """``url`` as it may be shown: scheme, host, port and database, no password or options."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_store_url(url: str) -> str:
    """``url`` if it names a Redis server (``redis://host:port/db``); else ValueError saying
    what is wrong, without the URL's password."""
    parts = urlsplit(url)
    if parts.scheme not in STORE_SCHEMES:
        raise ValueError(
            f"not a Redis URL (it starts {parts.scheme + ':' if parts.scheme else 'with no scheme'}"
            ", not redis:// or rediss://): write redis://host:port/db"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(
            f"the port of {parts.scheme}://{parts.hostname} is not a port number"
        ) from None
    if not parts.hostname:
        raise ValueError(f"no host in the Redis URL: write {parts.scheme}://host:port/db")
    if port == 0:
        raise ValueError("port 0 is not a port a Redis server listens on")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError(f"the database of a Redis URL is a number (/0, /1, ...), not /{db}")
    # Options in the query (socket_timeout=...) are checked as redis-py reads them; a pool
    # connects only when first used.
    try:
        ConnectionPool.from_url(url).disconnect()
    except ValueError as exc:
        raise ValueError(f"in the options of {shown(url)}: {exc}") from None
    return url
