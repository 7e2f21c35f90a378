"""The partner's console: what a company holds through Accord, on one page behind its sign-in.

A partner's engineer signs in at ``/partner/login`` with one of the company's apps' client id and
secret (what the company already holds; a public app, which has no secret, cannot sign in). The
session is the company's, not the app's: ``/partner`` shows

* **its agreements**, as provider or recipient: status, privacy review, dates, each clause with
  its direction, data categories and purposes (the registry's public terms, as ``/audit`` shows
  them, narrowed to the company's own);
* **its apps**: each permission its agreement offers, whether review approved it, its test
  people, and how many people have a live grant to it now;
* **usage against its quota**: the API's rate limit per app, and from the ledger the requests
  each app made (allowed and refused) in the last 30 days, the busiest day, and refusals by rule;
* **what it received**: the latest releases to the company (the fortnightly report among them),
  with clause, purpose, people counted and the ledger index anyone can prove;
* **its ad spend** where the company is also an advertiser (:mod:`accord.ads.access`).

Roles are kept apart: the partner session opens no person's page (those need the person's own
sign-in), a person's session opens no partner page, and the company shown is the one the
signed cookie names, never one from the URL. Sign-in and sign-out are POST forms carrying a
signed token (no cross-site request can sign a browser in or out).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from accord import agreements as ag
from accord.ads.access import spend_beside_access
from accord.ads.tables import advertisers
from accord.api import tables as api_t
from accord.api.apps import App, PartnerApps
from accord.api.audit_view import Logged, ledger_entries
from accord.api.pages import error_page, templates
from accord.api.signing import Signer
from accord.api.wording import word
from accord.service import Accord
from accord.store.people import PartyRepository

PARTNER_COOKIE = "accord_partner"
SIGN_IN_SECONDS = 3600
FORM_SECONDS = 900
USAGE_DAYS = 30
"""The window of the usage table."""
RECEIVED = 20
"""Releases to the company listed, newest first."""


@dataclass
class AppView:
    """One of the company's apps as its console shows it."""

    app: App
    agreement: str
    permissions: list[tuple[Any, bool]]
    """(wording, approved) for each permission the agreement offers it."""
    test_people: int
    people: int
    """People with a live grant to it now."""
    allowed: int = 0
    refused: int = 0
    by_day: Counter[str] = field(default_factory=Counter)
    refused_by_rule: Counter[str] = field(default_factory=Counter)

    @property
    def busiest(self) -> tuple[str, int] | None:
        """The day with the most requests in the window, and their number."""
        return self.by_day.most_common(1)[0] if self.by_day else None


def partner_console(accord: Accord, apps: PartnerApps, key: bytes, *, rate_limit: str) -> APIRouter:
    """The partner console's pages over ``accord`` and its partner apps."""
    router = APIRouter(include_in_schema=False)
    cookies = Signer(key, "partner-sign-in")
    forms = Signer(key, "partner-form")

    def signed_in(request: Request) -> dict[str, Any] | None:
        return cookies.unsign(request.cookies.get(PARTNER_COOKIE))

    @router.get("/partner/login")
    async def login_page(request: Request) -> Response:
        return _login(request, forms.sign({"login": True}, FORM_SECONDS))

    @router.post("/partner/login")
    async def login(
        request: Request,
        client_id: Annotated[str, Form()] = "",
        client_secret: Annotated[str, Form()] = "",
        form: Annotated[str, Form()] = "",
    ) -> Response:
        return await run_in_threadpool(_sign_in, request, client_id, client_secret, form)

    def _sign_in(request: Request, client_id: str, client_secret: str, form: str) -> Response:
        token = forms.sign({"login": True}, FORM_SECONDS)
        if forms.unsign(form) is None:
            return _login(request, token, "The form expired or did not come from this page.", 400)
        app = apps.get(client_id.strip())
        if (
            app is None
            or app.revoked_at is not None
            or not client_secret
            or not app.check_client_secret(client_secret)
        ):
            # One answer for every way it fails: no hint which client ids exist.
            return _login(request, token, "That client id and secret do not match an app.", 401)
        response = RedirectResponse("/partner", status_code=303)
        response.set_cookie(
            PARTNER_COOKIE,
            cookies.sign({"party": app.party, "client_id": app.client_id}, SIGN_IN_SECONDS),
            max_age=SIGN_IN_SECONDS,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/partner/logout")
    async def logout(request: Request, form: Annotated[str, Form()] = "") -> Response:
        who = signed_in(request)
        if who is None or forms.unsign(form) != {"party": who["party"]}:
            return error_page(
                request, 400, "That cannot be done", "The form did not come from your console."
            )
        response = RedirectResponse("/partner/login", status_code=303)
        response.delete_cookie(PARTNER_COOKIE)
        return response

    @router.get("/partner")
    async def overview(request: Request) -> Response:
        who = signed_in(request)
        if who is None:
            return RedirectResponse("/partner/login", status_code=303)
        return await run_in_threadpool(_overview, request, str(who["party"]))

    def _overview(request: Request, party: str) -> Response:
        now = datetime.now(UTC)
        with accord.session() as s:
            names = {p.id: p.name for p in PartyRepository(s).list()}
        mine = sorted(
            (
                r
                for r in accord.agreements()
                if party in (r.agreement.provider, r.agreement.recipient)
            ),
            key=lambda r: r.agreement.id,
        )
        views = _apps(accord, apps, party, mine, names=names, now=now)
        by_client = {v.app.client_id: v for v in views}
        since = (now - timedelta(days=USAGE_DAYS)).isoformat()
        received: list[Logged] = []
        for logged in reversed(ledger_entries(accord.ledger, ["decision", "release"])):
            e = logged.entry
            if e["kind"] == "decision":
                view = by_client.get(str(e.get("client") or ""))
                if view is None or str(e.get("at") or "") < since:
                    continue
                if e["allowed"]:
                    view.allowed += 1
                else:
                    view.refused += 1
                    for rule in e.get("rules") or ():
                        view.refused_by_rule[str(rule)] += 1
                view.by_day[str(e.get("at") or "")[:10]] += 1
            elif e.get("recipient") == party and len(received) < RECEIVED:
                received.append(logged)
        spend = _ad_spend(accord, party)
        return templates.TemplateResponse(
            request,
            "partner/overview.html",
            {
                "party": party,
                "party_name": names.get(party, party),
                "names": names,
                "agreements": mine,
                "apps": views,
                "rate_limit": rate_limit,
                "usage_days": USAGE_DAYS,
                "received": received,
                "spend": spend,
                "form": forms.sign({"party": party}, FORM_SECONDS),
            },
        )

    return router


def _login(request: Request, form: str, error: str | None = None, status: int = 200) -> Response:
    return templates.TemplateResponse(
        request, "partner/login.html", {"form": form, "error": error}, status_code=status
    )


def _apps(
    accord: Accord,
    apps: PartnerApps,
    party: str,
    mine: list[ag.Registered],
    *,
    names: dict[str, str],
    now: datetime,
) -> list[AppView]:
    g = api_t.grants_table
    views = []
    for registered in mine:
        agreement = registered.agreement
        for app in apps.under(agreement.id):
            if app.party != party:
                continue
            approved = apps.approved(app.client_id)
            with accord.session() as s:
                people = s.execute(
                    select(func.count(func.distinct(g.c.person))).where(
                        g.c.client_id == app.client_id,
                        g.c.revoked_at.is_(None),
                        g.c.expires_at > now,
                    )
                ).scalar_one()
            views.append(
                AppView(
                    app,
                    agreement.id,
                    [
                        (word(scope, agreement, app.party, names), scope in approved)
                        for scope in sorted(apps.offered(app))
                    ],
                    len(apps.test_people(app.client_id)),
                    int(people),
                )
            )
    return views


def _ad_spend(accord: Accord, party: str) -> list[Any]:
    """The company's years as an advertiser on each platform, where it is one."""
    with accord.engine.connect() as c:
        platforms = sorted(
            c.execute(select(advertisers.c.platform).where(advertisers.c.party == party).distinct())
            .scalars()
            .all()
        )
    rows: dict[str, list[Any]] = defaultdict(list)
    for platform in platforms:
        for row in spend_beside_access(accord.engine, platform).rows:
            if row.access is not None and row.access.party == party:
                rows[platform].append(row)
    return sorted(rows.items())


__all__ = ["PARTNER_COOKIE", "partner_console"]
