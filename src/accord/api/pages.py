"""What the server shows a browser: the templates, error pages, and which requests get a page.

The API's own paths (``/v1``, ``/oauth``, ``/.well-known``, the OpenAPI document, the health
checks) always answer machines: their errors stay problem documents whatever the client asks
for. Any other path asked for by a browser (``Accept`` naming ``text/html``) gets its errors as an
HTML page.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import Response

templates = Jinja2Templates(directory=str(resources.files("accord.web") / "templates"))


def listed(items: Sequence[str]) -> str:
    """``items`` as a sentence lists them: "a", "a and b", "a, b and c"."""
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


templates.env.filters["listed"] = listed

API_PATHS = ("/v1", "/oauth", "/.well-known", "/openapi.json", "/healthz", "/readyz")
"""Paths (and what lies under them) that answer machines only."""


def is_api_path(path: str) -> bool:
    """Whether ``path`` is one of :data:`API_PATHS` or lies under one."""
    return any(path == p or path.startswith(f"{p}/") for p in API_PATHS)


def accepts_html(request: Request) -> bool:
    """Whether the client names HTML among what it accepts (every browser does)."""
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept or "application/xhtml+xml" in accept


def wants_page(request: Request) -> bool:
    """Whether an error on this request is shown as an HTML page: a browser, off the API."""
    return accepts_html(request) and not is_api_path(request.url.path)


def error_page(
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    links: Sequence[tuple[str, str]] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    """An HTML error page: what went wrong, and ``links`` (label, URL) to go on from."""
    return templates.TemplateResponse(
        request,
        "error.html",
        {"title": title, "detail": detail, "links": list(links)},
        status_code=status,
        headers=headers,
    )
