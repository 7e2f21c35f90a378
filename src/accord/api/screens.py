"""The OAuth endpoints and the consent screens a person sees when an app asks for access.

* Every permission is listed on its own line with its own checkbox, unticked: the person ticks
  what they allow (GDPR Art. 7(2) and Art. 4(11); a pre-ticked box is no consent, CJEU C-673/17
  Planet49). Permissions the app has not passed review for are shown but not offered, unless the
  person is one of the partner's test people.
* Consent to share what the person watches comes on a screen of its own, apart from every other
  term, stating how long it lasts (the person picks, at most two years) and how to withdraw it
  (18 U.S.C. 2710(b)(2)(B)).
* A ``Sec-GPC: 1`` header is an opt-out of sale and sharing for that person (11 CCR 7025): it is
  recorded, and permissions for cross-context advertising are not offered.

The start page (``/``) says what the server is and links onward, and ``/me/apps`` without a
party asks which account the person signs in with.

Signing in is the data holder's own business; the bundled sign-in page (``/login``, where a
person types their id) stands in for it so that the flow runs end to end. OAuth errors keep the
form RFC 6749 gives them (``{"error": ...}``); everything else is a problem document.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.oauth2.rfc6749 import OAuth2Error
from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from accord.api.apps import GRANT_DAYS, VPPA_MAX_MONTHS, App, PartnerApps, months_later
from accord.api.oauth import Delegation, FormRequest, OAuthServer, read_request
from accord.api.pages import accepts_html, error_page, listed, templates
from accord.api.scopes import Scope, parse_all
from accord.api.signing import Signer
from accord.api.wording import Wording, word
from accord.consent import OptOut, OptOutKind, SignalSource
from accord.errors import AccordError, ConsentError, NotFound
from accord.service import Accord
from accord.store.people import PartyRepository
from accord.store.repositories import ConsentRepository, PeopleRepository

PERSON_COOKIE = "accord_person"
SIGN_IN_SECONDS = 3600
PENDING_SECONDS = 900


@dataclass(frozen=True, slots=True)
class Offer:
    """One permission as the screen shows it: offered, or shown with why it is not."""

    scope: Scope
    wording: Wording
    why_not: str | None = None


class Screens:
    """The OAuth endpoints and consent screens over one authorization server."""

    def __init__(
        self,
        accord: Accord,
        apps: PartnerApps,
        server: OAuthServer,
        key: bytes,
        *,
        served: Iterable[str] = (),
    ) -> None:
        self.accord = accord
        self.apps = apps
        self.server = server
        self.cookies = Signer(key, "sign-in")
        self.pending = Signer(key, "consent")
        self.my_apps = Signer(key, "my-apps")
        """Signs ``/me/apps``'s forms: a value of one page's forms is refused by every other's."""
        self.served = frozenset(served)
        """The parties whose databases this server reads."""

    def controller_of(self, app: App) -> str:
        """The party whose people the app asks about: the other party of its agreement."""
        a = self.accord.policy().registry[app.agreement].agreement
        return a.provider if app.party == a.recipient else a.recipient

    def parties(self) -> set[str]:
        """Every party this server serves: those whose databases it reads, and every party of a
        registered agreement."""
        return set(self.served) | {
            p
            for r in self.accord.agreements()
            for p in (r.agreement.provider, r.agreement.recipient)
        }

    def names(self) -> dict[str, str]:
        """Each party's display name, by id (``Accord.add_party``)."""
        with self.accord.session() as s:
            return {p.id: p.name for p in PartyRepository(s).list()}

    def agreement_title(self, app: App) -> str:
        """The title of the agreement ``app`` is registered under."""
        return self.accord.policy().registry[app.agreement].agreement.title

    def person(self, request: Request) -> tuple[str, str] | None:
        """The signed-in person: (party, id)."""
        value = self.cookies.unsign(request.cookies.get(PERSON_COOKIE))
        if value is None:
            return None
        return str(value["party"]), str(value["person"])

    def honour_gpc(self, request: Request, party: str, person: str) -> bool:
        """Whether the browser sent ``Sec-GPC: 1``; if so, the person's opt-out of sale and
        sharing at ``party`` is recorded (once: an opt-out already in force stands)."""
        if request.headers.get("sec-gpc") != "1":
            return False
        now = datetime.now(UTC)
        if not self.opted_out(party, person, now):
            self.accord.opt_out(
                OptOut(person, party, OptOutKind.SALE_SHARING, SignalSource.GPC, now)
            )
        return True

    def opted_out(self, party: str, person: str, at: datetime | None = None) -> bool:
        """Whether an opt-out of sale and sharing of ``person``'s data at ``party`` is in force
        (recorded by any means: this page, the privacy centre, a GPC signal, a bulk import)."""
        moment = at or datetime.now(UTC)
        with self.accord.session() as s:
            facts = ConsentRepository(s).facts(party, [person]).get(person)
        return facts is not None and any(
            o.kind is OptOutKind.SALE_SHARING and o.in_force_at(moment) for o in facts.opt_outs
        )

    def offers(self, app: App, person: str, asked: frozenset[Scope], gpc: bool) -> list[Offer]:
        """Each permission asked for, and whether it can be granted now. Sale and sharing
        (cross-context advertising) is not offered to a person whose browser sent a GPC signal
        or who opted out of it earlier: the opt-out stands until they withdraw it themselves
        (Cal. Civ. Code 1798.135(c)(4): a business waits at least 12 months before asking a
        person who opted out to authorise sale or sharing again; the privacy centre's withdrawal
        is theirs to use whenever they like)."""
        approved = self.apps.approved(app.client_id)
        tester = person in self.apps.test_people(app.client_id)
        agreement = self.accord.policy().registry[app.agreement].agreement
        names = self.names()
        opted_out = (not gpc) and any(s.sale_or_sharing for s in asked)
        opted_out = opted_out and self.opted_out(self.controller_of(app), person)
        out = []
        for scope in sorted(asked):
            why = None
            if scope.sale_or_sharing and gpc:
                why = (
                    "Not offered: your browser's Global Privacy Control signal opted you out of "
                    "the sale and sharing of your data."
                )
            elif scope.sale_or_sharing and opted_out:
                why = (
                    "Not offered: you opted out of the sale and sharing of your data. Your "
                    "opt-out stands; you can withdraw it under Connected apps in your privacy "
                    "settings."
                )
            elif scope not in approved and not tester:
                why = "Not offered: this app has not yet passed review for this permission."
            out.append(Offer(scope, word(scope, agreement, app.party, names), why))
        # One choice per purpose, the service first and advertising last.
        return sorted(out, key=lambda o: (o.wording.advertising, o.scope.purpose, o.scope))


def _error_page(request: Request, status: int, title: str, detail: str) -> Response:
    return error_page(request, status, title, detail)


async def _oauth(request: Request) -> FormRequest | Response:
    try:
        return await read_request(request)
    except OAuth2Error as exc:
        return JSONResponse(dict(exc.get_body()), status_code=400)


def _rebuild(request: Request, params: list[list[str]]) -> FormRequest:
    base = str(request.base_url).rstrip("/")
    query = [(k, v) for k, v in params]
    return FormRequest("GET", f"{base}/oauth/authorize?{urlencode(query)}", request.headers, query)


def build_router(screens: Screens) -> APIRouter:
    """The OAuth endpoints, the server metadata, the consent screens, the sign-in page, and the
    page where a person sees and takes back what they allowed."""
    router = APIRouter(include_in_schema=False)
    _home_routes(router, screens)
    _oauth_routes(router, screens)
    _consent_routes(router, screens)
    _vppa_routes(router, screens)
    _sign_in_routes(router, screens)
    _my_apps_routes(router, screens)
    _sale_sharing_routes(router, screens)
    return router


INDEX = {
    "docs": "/docs",
    "openapi": "/openapi.json",
    "oauth_authorization_server": "/.well-known/oauth-authorization-server",
    "agreements": "/v1/agreements",
    "my_apps": "/me/apps",
    "health": "/healthz",
}
"""What the server's start page links to, as its JSON form names them."""


def _home_routes(router: APIRouter, screens: Screens) -> None:
    """``/``: the start page, saying what this server is and where to go (the API reference,
    the OAuth metadata, the published agreements, a person's own apps); a client asking for
    JSON only gets the same links as a JSON index."""

    @router.get("/")
    async def home(request: Request) -> Response:
        return await run_in_threadpool(_home, request)

    def _home(request: Request) -> Response:
        vary = {"Vary": "Accept"}
        accept = request.headers.get("accept", "").lower()
        if "application/json" in accept and not accepts_html(request):
            base = str(request.base_url).rstrip("/")
            body = {"name": "Accord partner API", **{k: f"{base}{v}" for k, v in INDEX.items()}}
            return JSONResponse(body, headers=vary)
        published = [r for r in screens.accord.agreements() if r.published]
        return templates.TemplateResponse(
            request,
            "home.html",
            {
                "parties": sorted(screens.parties()),
                "agreements": [
                    (r, len(screens.apps.under(r.agreement.id)))
                    for r in sorted(published, key=lambda r: r.agreement.id)
                ],
                "index": INDEX,
            },
            headers=vary,
        )


def _oauth_routes(router: APIRouter, screens: Screens) -> None:
    server = screens.server

    @router.get("/.well-known/oauth-authorization-server")
    async def metadata(request: Request) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        body = await run_in_threadpool(server.metadata, base)
        return JSONResponse(body)

    @router.post("/oauth/token")
    async def token(request: Request) -> Response:
        req = await _oauth(request)
        if isinstance(req, Response):
            return req
        response: Response = await run_in_threadpool(server.create_token_response, req)
        return response

    @router.post("/oauth/introspect")
    async def introspect(request: Request) -> Response:
        req = await _oauth(request)
        if isinstance(req, Response):
            return req
        response: Response = await run_in_threadpool(
            server.create_endpoint_response, "introspection", req
        )
        return response

    @router.post("/oauth/revoke")
    async def revoke(request: Request) -> Response:
        req = await _oauth(request)
        if isinstance(req, Response):
            return req
        response: Response = await run_in_threadpool(
            server.create_endpoint_response, "revocation", req
        )
        return response


def _consent_routes(router: APIRouter, screens: Screens) -> None:
    server = screens.server

    @router.get("/oauth/authorize")
    async def authorize(request: Request) -> Response:
        req = await _oauth(request)
        if isinstance(req, Response):
            return req
        return await run_in_threadpool(_authorize, request, req)

    def _authorize(request: Request, req: FormRequest) -> Response:
        try:
            grant = server.get_consent_grant(req, end_user=None)
        except OAuth2Error as exc:
            if exc.redirect_uri:
                response: Response = server.handle_error_response(req, exc)
                return response
            return _error_page(request, 400, "This app's request is invalid", exc.description)
        app: App = grant.client
        controller = screens.controller_of(app)
        signed_in = screens.person(request)
        if signed_in is None or signed_in[0] != controller:
            target = f"/oauth/authorize?{request.url.query}"
            return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
        person = signed_in[1]
        gpc = screens.honour_gpc(request, controller, person)
        offers = screens.offers(app, person, parse_all(req.scope), gpc)
        pending = screens.pending.sign(
            {
                "party": controller,
                "person": person,
                "client_id": app.client_id,
                "params": [[k, v] for k, v in request.query_params.multi_items()],
                "gpc": gpc,
            },
            PENDING_SECONDS,
        )
        names = screens.names()
        return templates.TemplateResponse(
            request,
            "consent.html",
            {
                "app": app,
                "party_name": names.get(app.party, app.party),
                "agreement_title": screens.agreement_title(app),
                "controller": names.get(controller, controller),
                "controller_id": controller,
                "person": person,
                "offers": [o for o in offers if not o.scope.viewing],
                "viewing": [o for o in offers if o.scope.viewing],
                "gpc": gpc,
                "pending": pending,
                "until": datetime.now(UTC) + timedelta(days=GRANT_DAYS),
                "grant_days": GRANT_DAYS,
            },
        )

    @router.post("/oauth/authorize/consent")
    async def consent(
        request: Request,
        pending: Annotated[str, Form()],
        action: Annotated[str, Form()] = "deny",
        scope: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        return await run_in_threadpool(_consent, request, pending, action, scope or [])

    def _consent(request: Request, pending: str, action: str, chosen: list[str]) -> Response:
        state = _verified(screens, request, pending)
        if isinstance(state, Response):
            return state
        req = _rebuild(request, state["params"])
        try:
            grant = server.get_consent_grant(req, end_user=None)
        except OAuth2Error as exc:
            return _error_page(request, 400, "This app's request is invalid", exc.description)
        app: App = grant.client
        offers = screens.offers(app, state["person"], parse_all(req.scope), bool(state["gpc"]))
        grantable = {str(o.scope) for o in offers if o.why_not is None}
        picked = [] if action != "allow" else sorted(set(chosen) & grantable)
        viewing = [o for o in offers if o.scope.viewing and o.why_not is None]
        if action == "allow" and viewing:
            next_pending = screens.pending.sign({**state, "chosen": picked}, PENDING_SECONDS)
            names = screens.names()
            today = datetime.now(UTC)
            return templates.TemplateResponse(
                request,
                "vppa.html",
                {
                    "app": app,
                    "party_name": names.get(app.party, app.party),
                    "controller": names.get(state["party"], state["party"]),
                    "controller_id": state["party"],
                    "offers": viewing,
                    "pending": next_pending,
                    "months": [(m, months_later(today, m)) for m in range(1, VPPA_MAX_MONTHS + 1)],
                },
            )
        return _finish(screens, request, req, grant, state, picked=picked, months=None)


def _vppa_routes(router: APIRouter, screens: Screens) -> None:
    """The VPPA screen's answer: one consent per purpose ticked, for the months chosen."""
    server = screens.server

    @router.post("/oauth/authorize/vppa")
    async def vppa(
        request: Request,
        pending: Annotated[str, Form()],
        months: Annotated[int, Form(ge=1, le=VPPA_MAX_MONTHS)] = 12,
        action: Annotated[str, Form()] = "deny",
        scope: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        return await run_in_threadpool(_vppa, request, pending, months, action, scope or [])

    def _vppa(
        request: Request, pending: str, months: int, action: str, ticked: list[str]
    ) -> Response:
        state = _verified(screens, request, pending)
        if isinstance(state, Response) or "chosen" not in state:
            return state if isinstance(state, Response) else _expired(request)
        req = _rebuild(request, state["params"])
        try:
            grant = server.get_consent_grant(req, end_user=None)
        except OAuth2Error as exc:
            return _error_page(request, 400, "This app's request is invalid", exc.description)
        app: App = grant.client
        picked = list(state["chosen"])
        shared: list[str] = []
        if action == "allow":
            # Only the purposes ticked: sharing for the feed never brings advertising with it.
            offers = screens.offers(app, state["person"], parse_all(req.scope), bool(state["gpc"]))
            offered = {str(o.scope) for o in offers if o.scope.viewing and o.why_not is None}
            shared = sorted(set(ticked) & offered)
        return _finish(
            screens,
            request,
            req,
            grant,
            state,
            picked=picked + shared,
            months=months if shared else None,
        )


def _sign_in_routes(router: APIRouter, screens: Screens) -> None:
    def party_of(target: str) -> str | None:
        """The party a sign-in for ``target`` is at, where it can be told."""
        parts = urlsplit(target)
        query = dict(_pairs(parts.query))
        if _person_page(parts.path):
            party = query.get("party")
            return party if party in screens.parties() else None
        if parts.path == "/oauth/authorize":
            app = screens.apps.get(query.get("client_id", ""))
            return screens.controller_of(app) if app is not None else None
        return None

    @router.get("/login")
    async def login_page(request: Request, next: str = "/") -> Response:  # noqa: A002
        party = await run_in_threadpool(party_of, next)
        return templates.TemplateResponse(
            request, "login.html", {"next": next, "error": None, "party": party}
        )

    @router.post("/login")
    async def login(
        request: Request,
        person: Annotated[str, Form(min_length=1, max_length=255)],
        next: Annotated[str, Form(max_length=4000)] = "/",  # noqa: A002
    ) -> Response:
        return await run_in_threadpool(_login, request, person, next)

    def _login(request: Request, person: str, target: str) -> Response:
        parts = urlsplit(target)
        query = dict(_pairs(parts.query))
        if (
            parts.scheme
            or parts.netloc
            or not (parts.path == "/oauth/authorize" or _person_page(parts.path))
        ):
            return _error_page(request, 400, "Nowhere to go", "Sign in from an app's request.")
        if _person_page(parts.path):
            party = query.get("party", "")
            parties = sorted(screens.parties())
            if party not in parties:
                return error_page(
                    request,
                    400,
                    "Unknown party",
                    f"There is no party named {party!r} here. "
                    f"It serves {listed(parties) or 'none yet'}.",
                    links=[("Choose your account", parts.path)],
                )
        else:
            app = screens.apps.get(query.get("client_id", ""))
            if app is None:
                return _error_page(request, 400, "Unknown app", "The app asking is not registered.")
            party = screens.controller_of(app)
        try:
            with screens.accord.session() as s:
                PeopleRepository(s).get(party, person)
        except NotFound:
            return templates.TemplateResponse(
                request,
                "login.html",
                {"next": target, "error": f"{party} has no person {person!r}.", "party": party},
                status_code=401,
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            PERSON_COOKIE,
            screens.cookies.sign({"party": party, "person": person}, SIGN_IN_SECONDS),
            max_age=SIGN_IN_SECONDS,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response


def _my_apps_routes(router: APIRouter, screens: Screens) -> None:
    """``/me/apps``: every app the person let in, each permission, and buttons to take them back
    (as Facebook's Apps and Websites settings); a revocation works at once."""

    @router.get("/me/apps")
    async def my_apps(request: Request, party: str = "") -> Response:
        return await run_in_threadpool(_my_apps, request, party)

    def _my_apps(request: Request, party: str) -> Response:
        parties = sorted(screens.parties())
        if not party:
            signed_in = screens.person(request)
            return templates.TemplateResponse(
                request,
                "choose_party.html",
                {"parties": parties, "signed_in": signed_in[0] if signed_in else None},
            )
        if party not in parties:
            return error_page(
                request,
                404,
                "No such account",
                f"There is no party named {party!r} here. "
                f"It serves {listed(parties) or 'none yet'}.",
                links=[
                    (f"Your apps at {p}", f"/me/apps?{urlencode({'party': p})}") for p in parties
                ],
            )
        signed_in = screens.person(request)
        if signed_in is None or signed_in[0] != party:
            target = f"/me/apps?{urlencode({'party': party})}"
            return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
        person = signed_in[1]
        gpc = screens.honour_gpc(request, party, person)
        names = screens.names()
        consents = {c.id: c for c in screens.accord.consents(party, person)}
        apps: dict[str, tuple[App, list[Held]]] = {}
        now = datetime.now(UTC)
        for grant in screens.apps.made_by(person, party):
            app = screens.apps.get(grant.client_id)
            if app is None or app.revoked_at is not None:
                continue
            consent = consents.get(grant.consent_id)
            # The consent governs the sharing; the grant only bounds how long the app's access
            # lasts before it must ask again. A lapsed grant whose consent is still in force (a
            # VPPA consent for 12 months behind a 90-day grant) is listed, so that the person
            # sees the sharing that goes on and can stop it.
            if not grant.live(now) and not (consent is not None and consent.in_force_at(now)):
                continue
            agreement = screens.accord.policy().registry[app.agreement].agreement
            until = consent.expires_at if consent and consent.expires_at else grant.expires_at
            held = Held(
                grant,
                word(grant.scope, agreement, app.party, names),
                until,
                lapsed=not grant.live(now),
            )
            apps.setdefault(app.client_id, (app, []))[1].append(held)
        for _, held_list in apps.values():
            held_list.sort(key=lambda h: (h.wording.advertising, h.grant.scope))
        standing = screens.accord.standing(party, person)
        live_out = [o for o in standing.opt_outs if o.in_force_at(standing.at)]
        form = screens.my_apps.sign({"party": party, "person": person}, PENDING_SECONDS)
        return templates.TemplateResponse(
            request,
            "my_apps.html",
            {
                "party": party,
                "party_name": names.get(party, party),
                "names": names,
                "titles": {a.client_id: screens.agreement_title(a) for a, _ in apps.values()},
                "person": person,
                "apps": list(apps.values()),
                "form": form,
                "opted_out": bool(live_out),
                "opted_out_since": live_out[0].at if live_out else None,
                "gpc": gpc,
                "done": _DONE.get(request.query_params.get("done", "")),
            },
        )


def _sale_sharing_routes(router: APIRouter, screens: Screens) -> None:
    """``/me/apps``'s opt-out of the sale and sharing of one's data, and its withdrawal."""

    @router.post("/me/apps/opt-out")
    async def opt_out_mine(request: Request, form: Annotated[str, Form()]) -> Response:
        return await run_in_threadpool(_sale_sharing, request, form, True)

    @router.post("/me/apps/opt-in")
    async def opt_in_mine(request: Request, form: Annotated[str, Form()]) -> Response:
        return await run_in_threadpool(_sale_sharing, request, form, False)

    def _sale_sharing(request: Request, form: str, out: bool) -> Response:
        """Opt out of the sale and sharing of one's data, or withdraw that opt-out."""
        state = _verified(screens, request, form, my_apps=True)
        if isinstance(state, Response):
            return state
        party, person = state["party"], state["person"]
        if out:
            done = "nothing"
            if not screens.accord.standing(party, person).opted_out:
                screens.accord.opt_out(
                    OptOut(person, party, OptOutKind.SALE_SHARING, SignalSource.SETTINGS, _now())
                )
                done = "opted-out"
        else:
            try:
                screens.accord.opt_in(party, person)
                done = "opted-in"
            except ConsentError:
                done = "nothing"
        back = f"/me/apps?{urlencode({'party': party, 'done': done})}#sale"
        return RedirectResponse(back, status_code=303)

    @router.post("/me/apps/{client_id}/revoke")
    async def revoke_mine(
        request: Request,
        client_id: str,
        form: Annotated[str, Form()],
        scope: Annotated[str | None, Form()] = None,
    ) -> Response:
        return await run_in_threadpool(_revoke_mine, request, client_id, form, scope)

    def _revoke_mine(request: Request, client_id: str, form: str, scope: str | None) -> Response:
        state = _verified(screens, request, form, my_apps=True)
        if isinstance(state, Response):
            return state
        try:
            scopes = None if not scope else [Scope.parse(scope)]
        except AccordError as exc:
            return _error_page(request, 422, "Not a permission", str(exc))
        screens.apps.revoke(client_id, state["person"], scopes)
        back = f"/me/apps?{urlencode({'party': state['party']})}"
        return RedirectResponse(back, status_code=303)


_DONE = {
    "opted-out": "You are opted out of the sale and sharing of your data: no app receives it "
    "for advertising.",
    "opted-in": "Your opt-out is withdrawn. Advertising you consented to may use your data again.",
    "nothing": "Nothing needed changing.",
}


@dataclass(frozen=True, slots=True)
class Held:
    """A permission a person granted an app, in plain words, with the date its consent ends."""

    grant: Any
    wording: Wording
    until: datetime
    """When the consent behind it expires (what governs the sharing)."""
    lapsed: bool = False
    """The app's access lapsed (it must ask again) while the consent still stands."""


def _now() -> datetime:
    return datetime.now(UTC)


def _person_page(path: str) -> bool:
    """Whether ``path`` is one of a person's own pages (``/me`` and below), which name the
    party to sign in at in their ``party`` parameter."""
    return path == "/me" or path.startswith("/me/")


def _pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def _verified(
    screens: Screens, request: Request, pending: str, *, my_apps: bool = False
) -> dict[str, Any] | Response:
    """The signed state of a consent screen's form (or, with ``my_apps``, of ``/me/apps``'s),
    for the person signed in now; a value signed for another page is refused as expired."""
    state = (screens.my_apps if my_apps else screens.pending).unsign(pending)
    signed_in = screens.person(request)
    if state is None or (not my_apps and not {"params", "client_id"} <= state.keys()):
        return _expired(request)
    if signed_in != (state["party"], state["person"]):
        return _error_page(request, 403, "Not signed in as this person", "Sign in again and retry.")
    return state


def _expired(request: Request) -> Response:
    return _error_page(
        request, 400, "This consent form has expired", "Go back to the app and start again."
    )


def _finish(
    screens: Screens,
    request: Request,
    req: FormRequest,
    grant: Any,
    state: dict[str, Any],
    *,
    picked: list[str],
    months: int | None,
) -> Response:
    scopes = frozenset(Scope.parse(s) for s in picked)
    app: App = grant.client
    user = None
    if scopes:
        try:
            screens.apps.grant(
                app,
                state["person"],
                state["party"],
                scopes,
                notice=f"{state['party']} consent screen for app {app.client_id}",
                vppa_months=months,
            )
        except AccordError as exc:
            return _error_page(request, 422, "Your choices could not be recorded", str(exc))
        user = Delegation(state["person"], scopes)
    response: Response = screens.server.create_authorization_response(
        request=req, grant_user=user, grant=grant
    )
    return response
