"""The privacy centre: the pages a person uses to see and change what happens to their data.

* ``/me``: where they live and the laws that apply there, the partners they let in, every consent
  (purpose, categories, titles, given, when it ends, where it stands), the consent to share what
  they watch on its own (VPPA, 18 U.S.C. 2710(b)(2)(B)), the opt-out of sale and sharing as one
  toggle, and withdrawal in one click: one consent, one title of a viewing consent (case by case,
  2710(b)(2)(B)(iii)), or every consent at once (GDPR Art. 7(3): as easy as giving it).
* ``/me/releases``: every ledger entry about them, each with its inclusion proof under the latest
  signed checkpoint (entries appended since are shown pending: pages only read, and checkpoints
  are signed as the log grows, :mod:`accord.ledger.signing`), checked in the page by
  ``/static/ledger-check.js`` with WebCrypto; the proof bundle to download
  (``/me/releases/proof.json``, what ``accord ledger prove`` prints); and a consistency proof
  from the checkpoint the browser saw last to the newest.
* ``/me/export``: everything about them as one JSON document (GDPR Art. 15 and 20), with its
  JSON Schema, and as a page to read.

Only the signed-in person's own data is ever shown: no page takes a person's id from the URL,
only from the signed sign-in cookie of :mod:`accord.api.screens`. Every change is a POST carrying
a signed form value tied to that person (the consent screens' :class:`~accord.api.signing.Signer`),
so another site cannot make one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from accord import erasure
from accord.api.apps import PartnerApps
from accord.api.oauth import OAuthServer
from accord.api.pages import error_page, listed, templates
from accord.api.privacy_erasure import erasure_routes
from accord.api.privacy_view import (
    consent_cards,
    entry_rows,
    home,
    legal_bases,
    moment_text,
    released,
)
from accord.api.screens import PERSON_COOKIE, SIGN_IN_SECONDS, Screens
from accord.consent import ConsentStatus, OptOut, OptOutKind, SignalSource, consent_status
from accord.errors import AccordError, NotFound
from accord.export import SCHEMA_URL, export_person, person_entries
from accord.service import Accord, person_ref

FORM = "privacy-centre"
"""The purpose a signed form value of these pages carries."""

DONE = {
    "withdrawn": "Your consent is withdrawn. Nothing more goes out under it from now on.",
    "withdrawn-all": "Every consent you had given is withdrawn.",
    "title": "That title is no longer shared. Your consent carries on for every other title.",
    "opted-out": "You are opted out of the sale and sharing of your data.",
    "opted-in": "Your opt-out is withdrawn. Marketing flows may include you again where your "
    "consent allows.",
    "nothing": "There was nothing to change.",
}
"""What a page says after a change, by the ``done`` query parameter (never echoed as given)."""


class Centre:
    """The privacy centre over the consent screens' sign-in and signing keys."""

    def __init__(self, screens: Screens):
        self.screens = screens
        self.accord = screens.accord
        self.apps = screens.apps

    def signed_in(self, request: Request, party: str, path: str) -> tuple[str, str] | Response:
        """The signed-in (party, person), or where to send the browser: the sign-in of ``party``
        (then back to ``path``), or, with no party, the choice of account."""
        who = self.screens.person(request)
        if who is not None and (not party or who[0] == party):
            return who
        parties = sorted(self.screens.parties())
        if not party:
            return templates.TemplateResponse(
                request,
                "choose_party.html",
                {"parties": parties, "signed_in": None, "target": path, "purpose": "privacy"},
            )
        if party not in parties:
            return error_page(
                request,
                404,
                "No such account",
                f"There is no party named {party!r} here. "
                f"It serves {listed(parties) or 'none yet'}.",
                links=[
                    (f"Your privacy at {p}", f"{path}?{urlencode({'party': p})}") for p in parties
                ],
            )
        target = f"{path}?{urlencode({'party': party})}"
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)

    def form(self, party: str, person: str) -> str:
        """The signed value every form of the person's pages carries."""
        return self.screens.pending.sign(
            {"form": FORM, "party": party, "person": person}, SIGN_IN_SECONDS
        )

    def posted_by(self, request: Request, form: str) -> tuple[str, str] | Response:
        """The person a form was posted by: its signed value must be valid, from these pages,
        and for the person signed in now."""
        state = self.screens.pending.unsign(form)
        who = self.screens.person(request)
        if state is None or state.get("form") != FORM:
            return error_page(
                request,
                400,
                "This form has expired",
                "Open the page again and retry.",
                links=[("Your privacy", "/me")],
            )
        if who is None or who != (state["party"], state["person"]):
            return error_page(
                request,
                403,
                "Not signed in as this person",
                "Sign in again and retry.",
                links=[("Your privacy", "/me")],
            )
        return who

    # -- changes ------------------------------------------------------------------------------

    def withdraw(self, party: str, person: str, consent_id: str) -> bool:
        """Withdraw one of the person's consents, and the app grant it backs; whether it was in
        force. :class:`NotFound` for a consent that is not theirs."""
        consent = next((c for c in self.accord.consents(party, person) if c.id == consent_id), None)
        if consent is None:
            raise NotFound(f"you have no consent {consent_id!r}")
        now = datetime.now(UTC)
        if consent_status(consent, now) is not ConsentStatus.IN_FORCE:
            return False
        for grant in self.apps.grants_of_consent(consent_id):
            if grant.revoked_at is None and grant.person == person:
                self.apps.revoke(grant.client_id, person, [grant.scope], at=now)
        current = next(c for c in self.accord.consents(party, person) if c.id == consent_id)
        if current.withdrawn_at is None:
            self.accord.withdraw(consent_id, now)
        return True

    def withdraw_title(self, party: str, person: str, consent_id: str, title: str) -> None:
        """Withdraw one of the person's consents for one title; an app grant it backs moves to
        the record that replaces it."""
        if not any(c.id == consent_id for c in self.accord.consents(party, person)):
            raise NotFound(f"you have no consent {consent_id!r}")
        narrowed = self.accord.withdraw_title(consent_id, title)
        self.apps.replace_consent(consent_id, narrowed.id)


def centre(
    accord: Accord,
    apps: PartnerApps,
    server: OAuthServer,
    key: bytes,
    *,
    served: Iterable[str],
    erasure_deadline: timedelta = erasure.DEADLINE,
) -> APIRouter:
    """The privacy centre's router over the consent screens' sign-in: ``key`` is the key that
    signs sign-in cookies and forms, ``served`` the parties whose databases the server reads,
    ``erasure_deadline`` how long a recipient has to acknowledge an erasure."""
    return build_router(
        Screens(accord, apps, server, key, served=served), erasure_deadline=erasure_deadline
    )


def build_router(
    screens: Screens,
    *,
    erasure_deadline: timedelta = erasure.DEADLINE,
) -> APIRouter:
    """The privacy centre's pages and forms (the ledger's public checkpoint and consistency
    endpoints their checks use are the API's own, in its OpenAPI document)."""
    centre = Centre(screens)
    router = APIRouter(include_in_schema=False)
    _overview_routes(router, centre)
    _change_routes(router, centre)
    _release_routes(router, centre)
    _export_routes(router, centre)
    erasure_routes(router, centre, deadline=erasure_deadline)
    return router


def _nav(party: str, person: str, current: str) -> dict[str, Any]:
    return {"party": party, "person": person, "current": current}


def _overview_routes(router: APIRouter, centre: Centre) -> None:
    @router.get("/me")
    async def overview(request: Request, party: str = "", done: str = "") -> Response:
        return await run_in_threadpool(_overview, request, party, done)

    def _overview(request: Request, party: str, done: str) -> Response:
        who = centre.signed_in(request, party, "/me")
        if isinstance(who, Response):
            return who
        party, person = who
        accord = centre.accord
        held = accord.person(party, person)
        gpc = request.headers.get("sec-gpc") == "1"
        standing = accord.standing(party, person)
        ended = [o for o in standing.opt_outs if o.revoked_at is not None]
        if gpc and not standing.opted_out and not ended:
            # The signal is the person's opt-out (11 CCR 7025); one who opted back in since
            # chose otherwise on this page, which 7025(c)(3) lets the business ask them.
            centre.screens.honour_gpc(request, party, person)
            standing = accord.standing(party, person)
        # Every grant not taken back names the app on its consent's card (a VPPA consent can
        # outlive its app's 90-day access); the apps connected are those whose access is live.
        now = datetime.now(UTC)
        names: dict[str, str] = {}
        connected: dict[str, tuple[Any, list[Any]]] = {}
        for grant in centre.apps.made_by(person, party):
            app = centre.apps.get(grant.client_id)
            if app is None or app.revoked_at is not None:
                continue
            names[grant.consent_id] = app.name
            if grant.live(now):
                connected.setdefault(app.client_id, (app, []))[1].append(grant)
        cards = consent_cards(standing, names)
        leaves = accord.ledger.leaves_about(person_ref(party, person))
        titles = sorted({str(e["title"]) for e in leaves if e.get("title")})
        live_out = [o for o in standing.opt_outs if o.in_force_at(standing.at)]
        return _page(
            request,
            "privacy/overview.html",
            {
                **_nav(party, person, "overview"),
                "home": home(held.jurisdiction),
                "viewing": [c for c in cards if c.viewing],
                "others": [c for c in cards if not c.viewing],
                "in_force": sum(c.in_force for c in cards),
                "connected": list(connected.values()),
                "opted_out": standing.opted_out,
                "opted_out_since": moment_text(live_out[0].at) if live_out else None,
                "opted_back_in": moment_text(ended[-1].revoked_at) if ended else None,
                "gpc": gpc,
                "entries": len(leaves),
                "titles": titles,
                "form": centre.form(party, person),
                "done": DONE.get(done),
            },
        )


def _change_routes(router: APIRouter, centre: Centre) -> None:
    def finish(request: Request, form: str, change: Any) -> Response:
        who = centre.posted_by(request, form)
        if isinstance(who, Response):
            return who
        try:
            done = change(*who)
        except NotFound as exc:
            return error_page(request, 404, "Not yours", str(exc), links=[("Your privacy", "/me")])
        except AccordError as exc:
            return error_page(
                request, 422, "That could not be done", str(exc), links=[("Your privacy", "/me")]
            )
        return RedirectResponse(f"/me?{urlencode({'done': done})}#changes", status_code=303)

    @router.post("/me/consents/{consent_id}/withdraw")
    async def withdraw(request: Request, consent_id: str, form: Annotated[str, Form()]) -> Response:
        def change(party: str, person: str) -> str:
            return "withdrawn" if centre.withdraw(party, person, consent_id) else "nothing"

        return await run_in_threadpool(finish, request, form, change)

    @router.post("/me/consents/{consent_id}/titles")
    async def withdraw_title(
        request: Request,
        consent_id: str,
        form: Annotated[str, Form()],
        title: Annotated[str, Form(min_length=1, max_length=255)],
    ) -> Response:
        def change(party: str, person: str) -> str:
            centre.withdraw_title(party, person, consent_id, title)
            return "title"

        return await run_in_threadpool(finish, request, form, change)

    @router.post("/me/consents/withdraw-all")
    async def withdraw_all(request: Request, form: Annotated[str, Form()]) -> Response:
        def change(party: str, person: str) -> str:
            ids = [c.id for c in centre.accord.consents(party, person)]
            done = [centre.withdraw(party, person, i) for i in ids]
            return "withdrawn-all" if any(done) else "nothing"

        return await run_in_threadpool(finish, request, form, change)

    @router.post("/me/opt-out")
    async def opt_out(request: Request, form: Annotated[str, Form()]) -> Response:
        def change(party: str, person: str) -> str:
            if centre.accord.standing(party, person).opted_out:
                return "nothing"
            centre.accord.opt_out(
                OptOut(
                    person, party, OptOutKind.SALE_SHARING, SignalSource.SETTINGS, datetime.now(UTC)
                )
            )
            return "opted-out"

        return await run_in_threadpool(finish, request, form, change)

    @router.post("/me/opt-in")
    async def opt_in(request: Request, form: Annotated[str, Form()]) -> Response:
        def change(party: str, person: str) -> str:
            if not centre.accord.standing(party, person).opted_out:
                return "nothing"
            centre.accord.opt_in(party, person)
            return "opted-in"

        return await run_in_threadpool(finish, request, form, change)

    @router.post("/me/sign-out")
    async def sign_out(request: Request, form: Annotated[str, Form()]) -> Response:
        who = await run_in_threadpool(centre.posted_by, request, form)
        if isinstance(who, Response):
            return who
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(PERSON_COOKIE)
        return response


def _release_routes(router: APIRouter, centre: Centre) -> None:
    @router.get("/me/releases")
    async def releases(request: Request, party: str = "", since: int | None = None) -> Response:
        return await run_in_threadpool(_releases, request, party, since)

    def _releases(request: Request, party: str, since: int | None) -> Response:
        who = centre.signed_in(request, party, "/me/releases")
        if isinstance(who, Response):
            return who
        party, person = who
        bundle, leaves = person_entries(centre.accord, party, person)
        proved = {e["index"] for e in bundle["entries"]} if bundle else set()
        rows = entry_rows(
            leaves, party, proved=proved, bases=legal_bases(centre.accord.agreements())
        )
        reached = released(rows)
        partners = Counter(r.partner for r in reached if r.partner)
        return _page(
            request,
            "privacy/releases.html",
            {
                **_nav(party, person, "releases"),
                "rows": rows,
                "releases": len(reached),
                "partners": partners.most_common(),
                "bundle": bundle,
                "pending": len(rows) - len(proved),
                "since": since if since is not None and since >= 0 else None,
                "form": centre.form(party, person),
            },
        )

    @router.get("/me/releases/proof.json")
    async def proof(request: Request, party: str = "") -> Response:
        return await run_in_threadpool(_proof, request, party)

    def _proof(request: Request, party: str) -> Response:
        who = centre.signed_in(request, party, "/me/releases")
        if isinstance(who, Response):
            return who
        party, person = who
        bundle, _ = person_entries(centre.accord, party, person)
        if bundle is None:
            return error_page(
                request,
                404,
                "No proof yet",
                "No signed checkpoint covers an entry about you yet.",
                links=[("Where your data went", "/me/releases")],
            )
        return _download(
            json.dumps(bundle, indent=2, ensure_ascii=False) + "\n",
            f"accord-proof-{party}-{person}.json",
        )


def _export_routes(router: APIRouter, centre: Centre) -> None:
    @router.get("/me/export")
    async def export_page(request: Request, party: str = "") -> Response:
        return await run_in_threadpool(_export_page, request, party)

    def _export_page(request: Request, party: str) -> Response:
        who = centre.signed_in(request, party, "/me/export")
        if isinstance(who, Response):
            return who
        party, person = who
        data = export_person(centre.accord, party, person)
        return _page(
            request,
            "privacy/export.html",
            {
                **_nav(party, person, "export"),
                "data": data,
                "schema_url": SCHEMA_URL,
                "form": centre.form(party, person),
            },
        )

    @router.get("/me/export.json")
    async def export_json(request: Request, party: str = "") -> Response:
        return await run_in_threadpool(_export_json, request, party)

    def _export_json(request: Request, party: str) -> Response:
        who = centre.signed_in(request, party, "/me/export")
        if isinstance(who, Response):
            return who
        party, person = who
        data = export_person(centre.accord, party, person)
        return _download(
            json.dumps(data, indent=2, ensure_ascii=False) + "\n",
            f"accord-export-{party}-{person}.json",
        )


def _page(request: Request, name: str, context: dict[str, Any]) -> Response:
    """A page of the centre: it shows one person's data, so no cache keeps it."""
    response = templates.TemplateResponse(request, name, context)
    response.headers["Cache-Control"] = "no-store"
    return response


def _download(text: str, filename: str) -> Response:
    safe = "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in filename)
    return Response(
        text,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{safe}"',
            "Cache-Control": "no-store",
        },
    )
