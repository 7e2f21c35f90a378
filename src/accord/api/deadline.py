"""Every request answered within its time, even when the store stalls.

A database that takes connections and never answers (a stalled primary, a network partition
that drops packets silently) would hold a request for as long as it hangs, past any partner's
patience and any load balancer's. :class:`Deadline` answers each request that has not started
its response within ``ACCORD_API_EXCHANGE_SECONDS`` with 503 (a problem document, or the error
page for a browser), and leaves the work running in its thread to end when the store answers
again; whatever it then tries to send is dropped. The exchanges route keeps its own deadline
(:class:`accord.api.routes.ExchangeRoute`), which also stops the door from logging a release
nobody will receive, and is passed by.

What an abandoned request would still store, it does not: every commit of the store's sessions
(:meth:`accord.service.Accord.session`) checks :func:`accord.request_deadline.check` first, so
a consent, an opt-out or an app a person was answered 503 for is rolled back; the token endpoint
issues no token past the deadline (the token's row is rolled back with its code's use, so the
code can be exchanged again), whatever the store does after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.api.problems import answer
from accord.errors import RequestTimedOut
from accord.request_deadline import DEADLINE

log = logging.getLogger("accord.api")


@dataclass(slots=True, eq=False)
class _Watched:
    """A request under way: the loop time it is due by, and what answers it then."""

    due: float
    expire: Callable[[], None]
    over: bool = False
    """Answered, its answer started, or expired: nothing more to watch."""


class Deadline:
    """Answer 503 every HTTP request whose response has not started within ``seconds``, but
    those for which ``passed_by(path)`` is true.

    Every request has the same time, so they fall due in the order they came: one queue, and
    one timer for its oldest request, watch them all (a timer per request would cost as much as
    a small route's own work).
    """

    def __init__(self, app: ASGIApp, seconds: float, passed_by: Callable[[str], bool]) -> None:
        self.app = app
        self.seconds = seconds
        self.passed_by = passed_by
        self._watched: deque[_Watched] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.passed_by(scope["path"]):
            await self.app(scope, receive, send)
            return
        await self.within(self.app, scope, receive, send)

    async def within(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """The HTTP request ``scope`` answered by ``app`` within this deadline's time (503 past
        it): what this middleware does for the app it wraps, for another (the app's front,
        :mod:`accord.api.front`, serving a route past the stack)."""
        abandoned = False
        dropped: list[int] = []
        answering: list[asyncio.Future[None]] = []

        async def tracked(message: Message) -> None:
            if abandoned:
                if message["type"] == "http.response.start":
                    dropped.append(message["status"])
                return
            if message["type"] == "http.response.start":
                watched.over = True
            await send(message)

        def expire() -> None:
            # The request runs on in this task (a thread cannot be stopped, and the task waits
            # for the one a stalled store holds); its caller is answered from another.
            nonlocal abandoned
            abandoned = True
            reply = answer(Request(scope), RequestTimedOut(self.seconds))
            answering.append(asyncio.ensure_future(reply(scope, receive, send)))

        loop = asyncio.get_running_loop()
        watched = _Watched(loop.time() + self.seconds, expire)
        self._watch(loop, watched)
        # The threads the request runs work in see the deadline (each copies the context).
        mark = DEADLINE.set((time.monotonic() + self.seconds, self.seconds))
        try:
            await app(scope, receive, tracked)
        except Exception as exc:
            if not abandoned:
                raise
            _ended(scope["path"], f"with {exc!r}")
        else:
            if abandoned:
                _ended(scope["path"], f"answering {dropped[0] if dropped else 'nothing'} (dropped)")
        finally:
            watched.over = True
            DEADLINE.reset(mark)
            queue = self._watched
            while queue and queue[0].over:
                queue.popleft()
            if answering:
                await answering[0]

    def _watch(self, loop: asyncio.AbstractEventLoop, watched: _Watched) -> None:
        if loop is not self._loop:  # served again, by another loop: its timer went with it
            self._loop, self._watched, self._timer = loop, deque(), None
        self._watched.append(watched)
        if self._timer is None:
            self._timer = loop.call_at(watched.due, self._due, loop)

    def _due(self, loop: asyncio.AbstractEventLoop) -> None:
        """Expire every request past its time, and wait for the next one's."""
        self._timer = None
        now = loop.time()
        queue = self._watched
        while queue and (queue[0].over or queue[0].due <= now):
            watched = queue.popleft()
            if not watched.over:
                watched.over = True
                watched.expire()
        if queue:
            self._timer = loop.call_at(queue[0].due, self._due, loop)


def _ended(path: str, how: str) -> None:
    """An abandoned request's end, in the server's log (its caller was answered 503 long ago)."""
    log.warning("a request to %s abandoned at its deadline ended %s", path, how)
