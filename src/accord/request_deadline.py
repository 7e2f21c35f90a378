"""The time a request has left, where the work that serves it can ask.

:class:`accord.api.deadline.Deadline` sets it for each request it watches (the pages, the token
endpoint: every request but the exchanges, which keep their own) and answers 503 when it runs
out, leaving the work to finish in its thread once the store answers again. Whatever that work
would still store past then, it does not: :meth:`accord.service.Accord.session` calls
:func:`check` before it commits, so a write a person or a partner was told did not happen is
rolled back; the token endpoint checks again before its token is committed. Kept apart from the
web stack, so that the store's code asks without loading it; outside a request nothing is
checked.
"""

from __future__ import annotations

import contextvars
import time

from accord.errors import RequestTimedOut

DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "accord_request_deadline", default=None
)
"""The monotonic instant a request is answered 503 by, and its seconds, while it runs."""


def check() -> None:
    """:class:`~accord.errors.RequestTimedOut` if the request running here is past its deadline
    (it was answered 503 already): call it before committing what must not outlive that answer."""
    deadline = DEADLINE.get()
    if deadline is not None and time.monotonic() >= deadline[0]:
        raise RequestTimedOut(deadline[1])
