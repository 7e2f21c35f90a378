"""Erase me (GDPR Art. 17 and 19), in the privacy centre.

``POST /me/erase`` erases the signed-in person at the party they signed in to
(:func:`accord.erasure.erase`): every flow about them stops, their records go, each recipient of
their data gets a notice through the API with a deadline to acknowledge it. The person is then
signed out (there is no one left to sign in as) and sent to the request's page.

``GET /me/erasure/{request}`` shows where the request stands with each recipient: notified,
acknowledged, or overdue (its deadline passed without an acknowledgement), when each was told and
by when it must answer, and why it was told again. The request's id is long and random: it is
the person's only handle on the request, since Accord no longer knows who they are, and the page
names nobody. ``POST /me/erasure/{request}/retry`` tells every overdue recipient again, with a
new deadline and the reason (:func:`accord.erasure.retry_overdue`), so a request never stays
stuck.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from accord import erasure
from accord.api.pages import error_page, templates
from accord.api.privacy_view import moment_text
from accord.api.screens import PERSON_COOKIE
from accord.errors import AccordError, InvalidInput, NotFound

if TYPE_CHECKING:
    from accord.api.privacy import Centre

_REQUEST = re.compile(r"[0-9a-f]{32}")
log = logging.getLogger("accord.api")

DONE = {
    "erased": "Your data is erased. Every flow about you has stopped, and each company that "
    "received your data has been told to erase it too.",
    "retried": "Every company past its deadline has been told again, with a new deadline.",
    "nothing": "No company is past its deadline: nobody needed telling again.",
}

STATE_TEXT = {
    "notified": "Told, waiting for its acknowledgement",
    "acknowledged": "Acknowledged: erased on its side",
    "overdue": "Overdue: no acknowledgement by the deadline",
}


def _no_such(request: Request) -> Response:
    return error_page(
        request,
        404,
        "No such erasure request",
        "No erasure request has this address. Check that it was copied whole.",
        links=[("Home", "/")],
    )


def erasure_routes(router: APIRouter, centre: Centre, *, deadline: timedelta) -> None:
    """Add the erasure form and the request's page to the centre's ``router``."""

    @router.post("/me/erase")
    async def erase_me(
        request: Request,
        form: Annotated[str, Form()],
        confirm: Annotated[str, Form()] = "",
    ) -> Response:
        return await run_in_threadpool(_erase, request, form, confirm)

    def _erase(request: Request, form: str, confirm: str) -> Response:
        who = centre.posted_by(request, form)
        if isinstance(who, Response):
            return who
        party, person = who
        if confirm != "yes":
            return error_page(
                request,
                400,
                "Nothing was erased",
                "Tick the box that says you understand what erasure does, then press the "
                "button again.",
                links=[("Your privacy", "/me#erase")],
            )
        try:
            done = erasure.erase(centre.accord, party, person, deadline=deadline)
        except InvalidInput as exc:
            # Something about the request itself (nothing held about them): said as it is.
            return error_page(
                request, 422, "That could not be done", str(exc), links=[("Your privacy", "/me")]
            )
        except AccordError as exc:
            # A store that failed on the way: logged, its own words kept out of the page. The
            # person stays signed in to press the button again; erasure takes up where it
            # stopped (what it withdrew stays withdrawn).
            log.error("request to %s failed: %s", request.url.path, exc)  # noqa: TRY400 - as the app logs it
            return error_page(
                request,
                503,
                "Your erasure did not finish",
                "A store did not answer. Nothing you asked for is lost: press the button again "
                "to finish erasing your data.",
                links=[("Erase my data", "/me#erase")],
            )
        if done.request is None:
            return error_page(
                request, 409, "Already erased", "You were erased before.", links=[("Home", "/")]
            )
        target = f"/me/erasure/{done.request}?{urlencode({'done': 'erased'})}"
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(PERSON_COOKIE)
        return response

    def _state(request_id: str, now: datetime) -> erasure.RequestState | None:
        if not _REQUEST.fullmatch(request_id):
            return None
        try:
            return erasure.request_state(centre.accord, request_id, at=now)
        except NotFound:
            return None

    @router.get("/me/erasure/{request_id}")
    async def erasure_page(request: Request, request_id: str, done: str = "") -> Response:
        return await run_in_threadpool(_page, request, request_id, done)

    def _page(request: Request, request_id: str, done: str) -> Response:
        state = _state(request_id, datetime.now(UTC))
        if state is None:
            return _no_such(request)
        rows = [
            {
                "recipient": r.recipient,
                "state": r.state,
                "state_text": STATE_TEXT[r.state],
                "told": moment_text(r.told_at),
                "due": moment_text(r.due_at) if r.due_at else "no deadline",
                "due_iso": r.due_at.isoformat() if r.due_at else "",
                "acknowledged": moment_text(r.acknowledged_at) if r.acknowledged_at else None,
                "attempts": r.attempts,
                "problem": r.problem
                or (
                    f"No acknowledgement from {r.recipient} by its deadline."
                    if r.state == "overdue"
                    else None
                ),
            }
            for r in state.recipients
        ]
        response = templates.TemplateResponse(
            request,
            "privacy/erasure.html",
            {
                "request_id": state.id,
                "provider": state.provider,
                "requested": moment_text(state.requested_at),
                "rows": rows,
                "overdue": sum(r["state"] == "overdue" for r in rows),
                "acknowledged": sum(r["state"] == "acknowledged" for r in rows),
                "tag": erasure.request_tag(state.id),
                "done": DONE.get(done),
                "deadline_days": deadline.days,
            },
        )
        # The address is the only key to the request: no cache keeps it, no link leaks it.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex"
        return response

    @router.post("/me/erasure/{request_id}/retry")
    async def retry(request: Request, request_id: str) -> Response:
        return await run_in_threadpool(_retry, request, request_id)

    def _retry(request: Request, request_id: str) -> Response:
        if _state(request_id, datetime.now(UTC)) is None:
            return _no_such(request)
        told = erasure.retry_overdue(centre.accord, request=request_id)
        done = "retried" if told else "nothing"
        return RedirectResponse(
            f"/me/erasure/{request_id}?{urlencode({'done': done})}", status_code=303
        )
