"""Errors as RFC 9457 problem details (``application/problem+json``), mapped in one place.

Every error a caller can cause becomes a problem document saying what is wrong and where; an
unexpected failure becomes a 500 problem that says only that, never a stack trace (the trace
goes to the server's log). A browser asking for a page off the API's paths gets the same as an
HTML page instead (see :mod:`accord.api.pages`).
"""

from __future__ import annotations

import logging
from typing import Any, cast

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from accord.api.errors import (
    ExchangeTimedOut,
    Forbidden,
    InvalidToken,
    NothingToErase,
    RateLimited,
)
from accord.api.pages import error_page, wants_page
from accord.errors import AccordError, InvalidInput, LifecycleError, NotFound, RequestTimedOut
from accord.gateway import Refused, Unauthenticated

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("accord.api")


class Problem(BaseModel):
    """An RFC 9457 problem document, with Accord's extensions (the deciding rules, the receipt)."""

    type: str = Field(default="about:blank", description="A URI naming the kind of problem.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(default="", description="What went wrong with this request, and where.")
    instance: str | None = Field(default=None, description="The path the request was made to.")
    rules: list[str] | None = Field(default=None, description="The rules that refused it.")
    receipt: int | None = Field(
        default=None, description="The ledger index of the refusal, where it was logged."
    )
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Each invalid part of the request: where, and what is wrong."
    )


# Most specific first: the first match decides the status.
_STATUS: tuple[tuple[type[AccordError], int, str, str], ...] = (
    (InvalidToken, 401, "Invalid token", "invalid-token"),
    (Unauthenticated, 401, "Not authenticated", "invalid-token"),
    (Refused, 403, "Refused", "refused"),
    (Forbidden, 403, "Forbidden", "forbidden"),
    (RateLimited, 429, "Too many requests", "rate-limited"),
    (InvalidInput, 422, "Invalid request", "invalid-input"),
    (NotFound, 404, "Not found", "not-found"),
    (LifecycleError, 409, "Conflict", "conflict"),
    (ExchangeTimedOut, 503, "Service unavailable", "timed-out"),
    (RequestTimedOut, 503, "Service unavailable", "timed-out"),
)

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": title}
    for status, title in (
        (401, "No usable bearer token"),
        (403, "The token does not reach this request, or the policy refused it"),
        (404, "Not found"),
        (413, "The body is too large"),
        (415, "The body is not JSON"),
        (422, "The request is malformed"),
        (429, "Too many requests"),
        (500, "An unexpected failure; nothing was released"),
        (503, "A dependency failed; nothing was released"),
    )
}


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response."""
    body = Problem(
        type=f"urn:accord:problem:{slug}" if slug else "about:blank",
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        **extra,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def for_error(exc: AccordError, instance: str | None = None) -> JSONResponse:
    """The problem response for one of Accord's errors."""
    status, title, slug = next(
        ((status, title, slug) for kind, status, title, slug in _STATUS if isinstance(exc, kind)),
        (503, "Service unavailable", "unavailable"),
    )
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, Refused):
        extra["rules"] = list(exc.decision.rules)
        if exc.receipt is not None:
            extra["receipt"] = exc.receipt.index
    if isinstance(exc, Forbidden | NothingToErase):
        extra["rules"] = [exc.rule]
        extra["receipt"] = exc.receipt
    if isinstance(exc, InvalidToken | Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    detail = str(exc)
    if status >= 500:
        log.error("request to %s failed: %s", instance, exc)
        if not isinstance(exc, ExchangeTimedOut | RequestTimedOut):
            # The store's or a party's own message stays in the server's log.
            detail = "a store or a party's database failed; nothing was released"
    return problem(
        status, title, detail, instance=instance, slug=slug, headers=headers or None, **extra
    )


def _location(loc: Any) -> str:
    return ".".join(str(part) for part in loc)


_PAGE_TITLES = {
    404: "Page not found",
    405: "This page does not take that request",
    422: "This form is not complete",
    500: "Something went wrong",
}


def _as_page(request: Request, response: JSONResponse) -> Response:
    """The problem ``response`` as an HTML page for a browser off the API's paths, else as is."""
    if not wants_page(request):
        return response
    body = Problem.model_validate_json(bytes(response.body))
    status = body.status
    detail = body.detail
    if status == 404:
        detail = f"There is no page at {request.url.path}."
    headers = {k: v for k, v in response.headers.items() if k in {"retry-after", "allow"}}
    return error_page(
        request,
        status,
        _PAGE_TITLES.get(status, body.title),
        detail,
        links=[("Go to the start page", "/")],
        headers=headers or None,
    )


def answer(request: Request, exc: AccordError) -> Response:
    """The answer to ``exc``: its problem document, or for a browser off the API's paths, the
    same as an HTML page."""
    return _as_page(request, for_error(exc, request.url.path))


def install(app: FastAPI) -> None:
    """Install the handlers that turn every error into a problem document (or, for a browser
    off the API's paths, an HTML page)."""

    async def accord_error(request: Request, exc: Exception) -> Response:
        return answer(request, cast(AccordError, exc))

    async def invalid(request: Request, exc: Exception) -> Response:
        errors = [
            {"where": _location(e.get("loc", ())), "problem": str(e.get("msg", ""))}
            for e in cast(RequestValidationError, exc).errors()
        ]
        detail = "; ".join(f"{e['where']}: {e['problem']}" for e in errors[:5])
        return _as_page(
            request,
            problem(
                422,
                "Invalid request",
                detail or "the request is malformed",
                instance=request.url.path,
                slug="invalid-input",
                errors=errors,
            ),
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        exc = cast(HTTPException, exc)
        return _as_page(
            request,
            problem(
                exc.status_code,
                str(exc.detail) if exc.status_code < 500 else "Server error",
                str(exc.detail),
                instance=request.url.path,
                headers=dict(exc.headers) if exc.headers else None,
            ),
        )

    async def unexpected(request: Request, _exc: Exception) -> Response:
        log.exception("unexpected failure on %s", request.url.path)
        return _as_page(
            request,
            problem(
                500,
                "Internal error",
                "the server failed unexpectedly; nothing was released",
                instance=request.url.path,
                slug="internal",
            ),
        )

    app.add_exception_handler(AccordError, accord_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
