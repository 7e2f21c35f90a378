"""The application factory: :func:`create_app` builds the partner API over one Accord store."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    nullcontext,
)
from datetime import timedelta
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from limits import parse as parse_limit
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from accord.api import problems
from accord.api.access import Access
from accord.api.ads import AdRequestRoute, AdServers, run_ad_request
from accord.api.ads import router as ads_router
from accord.api.apps import PartnerApps
from accord.api.audit_console import console as audit_console
from accord.api.deadline import Deadline
from accord.api.erasures import router as erasure_router
from accord.api.errors import RateLimitStoreUnreachable
from accord.api.front import Front, FrontRoute, PartnerAPI
from accord.api.ledger_routes import router as ledger_router
from accord.api.middleware import CSP, AccessLog, LimitBody, content_security_policy
from accord.api.oauth import OAuthServer
from accord.api.partner_console import partner_console
from accord.api.privacy import centre as privacy_centre
from accord.api.ratelimit import deployment_prefix, limiter
from accord.api.refusals import RefusalLimit, RefusalLogger
from accord.api.registry import router as registry_router
from accord.api.routes import ExchangeRoute, Services, router, run_exchange
from accord.api.screens import Screens, build_router
from accord.api.settings import ApiSettings
from accord.gateway import Gateway, Keyring
from accord.ledger.signing import Checkpointer
from accord.service import Accord
from accord.sources import Source
from accord.store.engine import store_identity
from accord.store.writer import WriterClient

DESCRIPTION = """\
Accord's partner API. Every permission is visible (scopes are the agreement's data category and
purpose pairs), granular (a person allows each one on its own), reviewed (an app reaches the
public only for permissions a recorded review approved), expiring (tokens within an hour, a
person's grant after 90 days) and revocable (at once). Every exchange goes through the one door:
it is decided against the agreement, the law and each person's consent, and logged to a
verifiable ledger before anything is released.

OAuth 2.0: `/oauth/authorize` (authorization code with PKCE), `/oauth/token` (also client
credentials), `/oauth/introspect` (RFC 7662), `/oauth/revoke` (RFC 7009); metadata at
`/.well-known/oauth-authorization-server` (RFC 8414). Errors are RFC 9457 problem documents.
"""


class Health(BaseModel):
    """Whether the service is up (or ready)."""

    status: Literal["ok"]


def _checkpointer(accord: Accord, seconds: float) -> AbstractContextManager[Any]:
    """What signs the ledger's checkpoints while the app serves (nothing without a signing key,
    or with ``seconds`` 0)."""
    if accord.ledger.signer is None or seconds <= 0:
        return nullcontext()
    return Checkpointer(accord.ledger, seconds)


def create_app(
    accord: Accord,
    sources: Mapping[str, Source],
    settings: ApiSettings | None = None,
    *,
    key: bytes | None = None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    writer: WriterClient | None = None,
) -> FastAPI:
    """The partner API over ``accord`` and the parties' ``sources``.

    ``key`` signs sign-in cookies and consent forms (default: the setting, else random);
    ``lifespan`` runs around the app's life (a worker closes its store there); ``writer`` is the
    server's shared writer (:mod:`accord.store.writer`), which records ad impressions if given
    (the ledger's appends reach it through the ledger, :meth:`~accord.ledger.log.Ledger.
    send_appends_to`).
    """
    config = settings or ApiSettings()
    signing = key or (config.secret.encode() if config.secret else secrets.token_bytes(32))
    apps = PartnerApps(accord)
    keyring = Keyring()
    parties = set(sources)
    for registered in accord.agreements():
        parties |= {registered.agreement.provider, registered.agreement.recipient}
    party_tokens = {party: keyring.issue(party) for party in sorted(parties)}
    gateway = Gateway(accord, sources, keyring)
    store = config.rate_limit_store
    deployment = deployment_prefix(store_identity(accord.engine)) if store else ""
    prefix = config.rate_limit_prefix or deployment
    refused = limiter(parse_limit(config.refusal_limit), store, f"{prefix}:refused")
    access = Access(
        accord,
        apps,
        limiter(parse_limit(config.rate_limit), store, prefix),
        RefusalLimit(accord.ledger, refused),
    )
    server = OAuthServer(apps, issuer=config.issuer, token_seconds=config.token_seconds)
    services = Services(
        gateway,
        apps,
        access,
        party_tokens,
        erasure_deadline=timedelta(days=config.erasure_deadline_days),
        exchange_seconds=config.exchange_seconds,
    )

    @asynccontextmanager
    async def life(app: FastAPI) -> AsyncIterator[None]:
        # The exchanges under way finish before the caller's lifespan closes the store.
        async with lifespan(app) if lifespan is not None else nullcontext():
            try:
                # Checkpoints are signed as the log grows, so pages only read.
                with (
                    _checkpointer(accord, config.checkpoint_seconds),
                    RefusalLogger(access.refusals, config.refusal_log_seconds),
                ):
                    yield
            finally:
                services.close()
                access.close()

    app = PartnerAPI(
        title="Accord partner API",
        version="1",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=life,
    )
    app.state.services = services
    app.state.oauth = server
    app.state.ads = AdServers(accord, writer)
    problems.install(app)

    async def store_unreachable(request: Request, exc: Exception) -> JSONResponse:
        # Refused, not served unlimited; the store's URL (no password) says what to fix.
        return problems.problem(
            503,
            "Service unavailable",
            str(exc),
            instance=request.url.path,
            slug="rate-limit-store",
            headers={"Retry-After": "1"},
        )

    app.add_exception_handler(RateLimitStoreUnreachable, store_unreachable)
    for routes in (
        router,
        registry_router,
        ledger_router,
        erasure_router,
        ads_router,
        build_router(Screens(accord, apps, server, signing, served=set(sources))),
        privacy_centre(
            accord,
            apps,
            server,
            signing,
            served=set(sources),
            erasure_deadline=services.erasure_deadline,
        ),
        audit_console(accord),
        partner_console(accord, apps, signing, rate_limit=config.rate_limit),
    ):
        app.include_router(routes)
    _docs(app)

    @app.get("/healthz", response_model=Health, summary="Liveness", tags=["health"])
    def healthz() -> dict[str, Any]:
        """The process is up."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Health,
        summary="Readiness: the store and the ledger answer",
        tags=["health"],
        responses={503: problems.PROBLEM_RESPONSES[503]},
    )
    async def readyz() -> Any:
        """The store answers a query and the ledger its head."""

        def check() -> None:
            with accord.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            accord.ledger.head()

        try:
            await run_in_threadpool(check)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return problems.problem(
                503, "Not ready", f"the store or the ledger did not answer: {type(exc).__name__}"
            )
        return JSONResponse({"status": "ok"})

    # The exchanges keep their own deadline, which also keeps the door from logging a release
    # nobody receives; every other request is answered within the same time.
    exchanges = [r.path_regex for r in router.routes if isinstance(r, ExchangeRoute)]
    app.add_middleware(
        Deadline,
        seconds=config.exchange_seconds,
        passed_by=lambda path: any(p.match(path) for p in exchanges),
    )
    app.add_middleware(LimitBody, limit=config.max_body_bytes)
    app.add_middleware(AccessLog)
    app.front = _front(app, config)
    return app


def _front(app: FastAPI, config: ApiSettings) -> Front:
    """The hot routes past the stack, served as it would serve them (:mod:`accord.api.front`):
    the exchanges, which keep their own deadline, and the ad requests, within the app's."""
    exchange = next(r for r in router.routes if isinstance(r, ExchangeRoute))
    ads = next(r for r in ads_router.routes if isinstance(r, AdRequestRoute))
    return Front(
        app,
        [
            FrontRoute(exchange, run_exchange),
            FrontRoute(ads, run_ad_request, deadline_seconds=config.exchange_seconds),
        ],
        config.max_body_bytes,
    )


SWAGGER_UI = "/docs/static"
"""Where Swagger UI's own files are served from (the ``fastapi-swagger`` package ships them)."""


def _docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI over the OpenAPI document, every file of it served by this server
    (the page works without the internet), its one inline script allowed by a nonce; and
    ``/static``, the pages' own style sheet."""
    app.mount(
        SWAGGER_UI,
        StaticFiles(packages=[("fastapi_swagger", "resources")]),
        name="swagger-ui",
    )
    app.mount("/static", StaticFiles(packages=[("accord.web", "static")]), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title}: API reference",
            swagger_js_url=f"{root}{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_UI}/favicon-32x32.png",
        )
        nonce = secrets.token_urlsafe(16)
        html = (
            bytes(page.body)
            .decode()
            .replace("<html>", '<html lang="en">', 1)
            .replace("<script>", f'<script nonce="{nonce}">')
        )
        return HTMLResponse(html, headers={CSP: content_security_policy(script_nonce=nonce)})
