"""The time a request has left, where the work that serves it can ask.

:class:`accord.api.deadline.Deadline` sets it for each request it watches; what an abandoned
request would still store checks it first with :func:`check`. Kept apart from the middleware so
that the store's code (the partner apps, also run by the CLI) asks without loading the web stack.
"""

from __future__ import annotations

import contextvars
import time

from accord.api.errors import RequestTimedOut

DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "accord_request_deadline", default=None
)
"""The monotonic instant a request is answered 503 by, and its seconds, while it runs."""


def check() -> None:
    """:class:`RequestTimedOut` if the request running here is past its deadline (it was
    answered 503 already): call it before committing what must not outlive that answer."""
    deadline = DEADLINE.get()
    if deadline is not None and time.monotonic() >= deadline[0]:
        raise RequestTimedOut(deadline[1])
