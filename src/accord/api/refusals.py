"""A limit on refused tokens per client address, checked before authentication.

Every request whose bearer token is refused (none, unknown, expired, revoked) is logged to the
ledger, so that an auditor sees every refusal. Left alone, that lets anyone append to the ledger
as fast as they can send requests. As GitHub's API does for failed logins, each client address
may have at most so many tokens refused in a moving window (``ACCORD_API_REFUSAL_LIMIT``); past
it, every request from that address is answered 429 with ``Retry-After`` until the window frees,
its token not even looked up.

The refusals within the limit are logged one by one, as before. Those past it are counted, and
the counts are logged together every ``ACCORD_API_REFUSAL_LOG_SECONDS`` (and when the server
stops) as one entry: how many requests, from how many addresses, between which instants. So the
ledger grows by at most the limit per address and window, plus one entry per period and worker,
however many requests an attacker sends; and the auditor still sees that they were refused.
The aggregate names no address (an address is personal data, and the ledger is public); the
access log keeps each request's peer for the operator.

Addresses are counted as the server sees the peer (``accord serve`` takes it from
``X-Forwarded-For`` when uvicorn trusts the proxy: see its ``FORWARDED_ALLOW_IPS``); an IPv6
address by its /64, the smallest block a site is given (RFC 6177), so an attacker cannot count
afresh from each of its addresses.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from limits import RateLimitItem

from accord.api.errors import RateLimited, RateLimitStoreUnreachable
from accord.api.ratelimit import Limiter
from accord.errors import AccordError
from accord.ledger.entries import DecisionEntry
from accord.ledger.log import Ledger

TOO_MANY_REFUSED = "api:too-many-refused"
"""The rule of the aggregate entry and of the 429 answered past the limit."""
log = logging.getLogger("accord.api")


@lru_cache(maxsize=4096)
def address_key(host: str | None) -> str:
    """The key an address is counted under: an IPv4 address itself, an IPv6 address its /64
    (an IPv4-mapped one as IPv4), anything else (a Unix socket, a test client) as it is."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Tally:
    requests: int
    first: datetime
    last: datetime


class RefusalLimit:
    """Counts refused tokens per address against ``limiter``; tallies those past the limit
    and logs the tally to ``ledger`` at each :meth:`flush`. Thread-safe."""

    def __init__(self, ledger: Ledger, limiter: Limiter) -> None:
        self.ledger = ledger
        self.limiter = limiter
        self._tally: dict[str, _Tally] = {}
        self._lock = threading.Lock()

    @property
    def limit(self) -> RateLimitItem:
        """The limit of refused tokens per address."""
        return self.limiter.limit

    def before(self, address: str) -> None:
        """Before authenticating: :class:`RateLimited` (tallied) if ``address`` is known to be
        over its limit of refused tokens."""
        wait = self.limiter.refusing(address)
        if wait is not None:
            raise self._over(address, wait)

    def refused(self, address: str) -> RateLimited | None:
        """A token from ``address`` was refused: None if it is within the limit (log it one by
        one), else the :class:`RateLimited` to answer instead (it is tallied). A store that
        cannot be reached raises :class:`RateLimitStoreUnreachable`, the refusal tallied."""
        try:
            wait = self.limiter.hit(address)
        except RateLimitStoreUnreachable:
            self._count(address)
            raise
        return None if wait is None else self._over(address, wait)

    def _over(self, address: str, wait: float) -> RateLimited:
        self._count(address)
        return RateLimited(
            f"too many requests from this address had their token refused (over "
            f"{self.limiter.limit}); wait before trying again",
            retry_after=max(1, math.ceil(wait)),
        )

    def _count(self, address: str) -> None:
        now = datetime.now(UTC)
        with self._lock:
            tally = self._tally.get(address)
            if tally is None:
                self._tally[address] = _Tally(1, now, now)
            else:
                tally.requests += 1
                tally.last = now

    def pending(self) -> int:
        """Refusals counted and not yet logged."""
        with self._lock:
            return sum(t.requests for t in self._tally.values())

    def flush(self) -> int | None:
        """Log the refusals counted since the last flush as one entry; its ledger index, or None
        when there was nothing to log. A ledger that fails keeps the counts for the next flush."""
        with self._lock:
            tally, self._tally = self._tally, {}
        if not tally:
            return None
        requests = sum(t.requests for t in tally.values())
        first = min(t.first for t in tally.values())
        last = max(t.last for t in tally.values())
        addresses = len(tally)
        entry = DecisionEntry(
            agreement=None,
            reason=(
                f"Refused: {requests} request{'s' if requests != 1 else ''} from {addresses} "
                f"address{'es' if addresses != 1 else ''} over the limit of {self.limiter.limit} "
                f"refused tokens, between {first.isoformat(timespec='seconds')} and "
                f"{last.isoformat(timespec='seconds')}, were answered 429 and counted here "
                "rather than logged one by one; nothing was released."
            ),
            people=0,
            allowed=False,
            rules=(TOO_MANY_REFUSED,),
            at=last,
        )
        try:
            receipts = self.ledger.append([entry])
        except AccordError:
            with self._lock:
                for address, t in tally.items():
                    kept = self._tally.get(address)
                    if kept is None:
                        self._tally[address] = t
                    else:
                        kept.requests += t.requests
                        kept.first = min(kept.first, t.first)
            raise
        return receipts[0].index if receipts else None

    def close(self) -> None:
        """Let go of the limiter's connections."""
        self.limiter.close()


class RefusalLogger:
    """Flushes ``refusals`` every ``seconds`` in a thread of its own, and once when left."""

    def __init__(self, refusals: RefusalLimit, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, not {seconds}")
        self.refusals = refusals
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="accord-refusal-tally", daemon=True)

    def tick(self) -> None:
        """Flush; a failure is logged, not raised: the counts wait for the next tick."""
        try:
            self.refusals.flush()
        except AccordError as exc:
            log.warning("could not log the refused tokens counted: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            self.tick()

    def __enter__(self) -> RefusalLogger:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.tick()
