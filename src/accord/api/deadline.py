"""Every request answered within its time, even when the store stalls.

A database that takes connections and never answers (a stalled primary, a network partition
that drops packets silently) would hold a request for as long as it hangs, past any partner's
patience and any load balancer's. :class:`Deadline` answers each request that has not started
its response within ``ACCORD_API_EXCHANGE_SECONDS`` with 503 (a problem document, or the error
page for a browser), and leaves the work running in its thread to end when the store answers
again; whatever it then tries to send is dropped. The exchanges route keeps its own deadline
(:class:`accord.api.routes.ExchangeRoute`), which also stops the door from logging a release
nobody will receive, and is passed by.

What an abandoned request would still store, it checks first with :func:`check`: the token
endpoint issues no token past the deadline (the token's row is rolled back with its code's use,
so the code can be exchanged again), whatever the store does after.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.api.errors import RequestTimedOut
from accord.api.problems import answer

log = logging.getLogger("accord.api")

_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "accord_request_deadline", default=None
)
"""The monotonic instant a request is answered 503 by, and its seconds, while it runs."""


def check() -> None:
    """:class:`RequestTimedOut` if the request running here is past its deadline (it was
    answered 503 already): call it before committing what must not outlive that answer."""
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() >= deadline[0]:
        raise RequestTimedOut(deadline[1])


class Deadline:
    """Answer 503 every HTTP request whose response has not started within ``seconds``, but
    those for which ``passed_by(path)`` is true."""

    def __init__(self, app: ASGIApp, seconds: float, passed_by: Callable[[str], bool]) -> None:
        self.app = app
        self.seconds = seconds
        self.passed_by = passed_by

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.passed_by(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = abandoned = False
        dropped: list[int] = []

        async def tracked(message: Message) -> None:
            nonlocal started
            if abandoned:
                if message["type"] == "http.response.start":
                    dropped.append(message["status"])
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        # The task, and the threads it runs work in, see the deadline (each copies the context).
        mark = _DEADLINE.set((time.monotonic() + self.seconds, self.seconds))
        try:
            task = asyncio.ensure_future(self.app(scope, receive, tracked))
        finally:
            _DEADLINE.reset(mark)
        # Not asyncio.wait_for: cancelling the task would wait for the thread it waits on (a
        # thread cannot be stopped), which is what a stalled store holds.
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if done or started:
            await task  # answered, or its answer under way
            return
        abandoned = True
        path = scope["path"]
        task.add_done_callback(lambda ended: _ended(ended, path, dropped))
        timed_out = RequestTimedOut(self.seconds)
        await answer(Request(scope), timed_out)(scope, receive, send)


def _ended(task: asyncio.Future[None], path: str, dropped: list[int]) -> None:
    """An abandoned request's end, in the server's log (its caller was answered 503 long ago):
    with the status of the answer it dropped, or the exception it ended with."""
    if task.cancelled():
        how = "cancelled"
    elif (exc := task.exception()) is not None:
        how = f"with {exc!r}"
    else:
        how = f"answering {dropped[0] if dropped else 'nothing'} (dropped)"
    log.warning("a request to %s abandoned at its deadline ended %s", path, how)
