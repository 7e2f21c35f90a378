"""Partner apps, their reviews and test people, people's grants, codes and tokens, in the store.

Only hashes of secrets, codes and tokens are stored (SHA-256; they are 256-bit random values, so
a salt adds nothing). Whether a token still works is decided at each use from the store: a grant
revoked or an app revoked refuses the very next request.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Dialect, bindparam, delete, select, update
from sqlalchemy.orm import Session

from accord import request_deadline
from accord.api import tables as t
from accord.api.scopes import Scope, offered, parse_all, render
from accord.consent import Consent, Method
from accord.consent import Scope as ConsentScope
from accord.errors import InvalidInput, NotFound, StoreError, translate
from accord.gateway.keyring import hash_token
from accord.ledger.entries import AppEntry, AppEvent
from accord.service import Accord, person_refs
from accord.store.driver import pooled
from accord.store.erased import is_erased
from accord.store.registry import REVISION_SQL, count_change, remember_revision
from accord.store.repositories import PeopleRepository
from accord.store.types import UTCDateTime

GRANT_DAYS = 90
"""A person's grant of data access lasts this long unless they renew it (as Graph API's)."""
VPPA_MAX_MONTHS = 24
"""18 U.S.C. 2710(b)(2)(B)(ii)(II): consent in advance for at most two years."""
CODE_SECONDS = 60
"""An authorization code is exchanged within a minute (RFC 6749 section 4.1.2 advises 10)."""
CODE_KEPT_SECONDS = 2 * 3600
"""A used code is kept this long after it expires, so that a replay revokes its tokens for as
long as they could live (an hour at most)."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class App:
    """A registered partner app; it answers Authlib's ``ClientMixin`` questions."""

    client_id: str
    name: str
    party: str
    agreement: str
    secret_hash: bytes | None
    redirect_uris: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def public(self) -> bool:
        """A public client holds no secret; it proves itself with PKCE alone (RFC 7636)."""
        return self.secret_hash is None

    # -- authlib.oauth2.rfc6749.ClientMixin ------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        # Narrowed later to what the agreement offers and what the person approves.
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_hash is None:
            return False
        return secrets.compare_digest(self.secret_hash, hash_token(client_secret))

    def check_endpoint_auth_method(self, method: str, _endpoint: str) -> bool:
        if self.public:
            return method == "none"
        return method in {"client_secret_basic", "client_secret_post"}

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials":
            return not self.public
        return grant_type == "authorization_code"


@dataclass(frozen=True, slots=True)
class Token:
    """An access token as stored (its hash), for the app alone or for one person."""

    token_hash: bytes
    app: App
    person: str | None
    scopes: frozenset[Scope]
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    def live(self, at: datetime) -> bool:
        """Not expired, not revoked, and its app not revoked."""
        return at < self.expires_at and self.revoked_at is None and self.app.revoked_at is None

    # -- authlib.oauth2.rfc6749.TokenMixin -------------------------------------------------------

    def check_client(self, client: App) -> bool:
        return client.client_id == self.app.client_id

    def get_scope(self) -> str:
        return render(self.scopes)

    def get_expires_in(self) -> int:
        return int((self.expires_at - self.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return _now() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked_at is not None or self.app.revoked_at is not None

    def get_user(self) -> str | None:
        return self.person

    def get_client(self) -> App:
        return self.app


@dataclass(frozen=True, slots=True)
class Code:
    """An authorization code as stored, with the PKCE challenge its exchange must answer."""

    code_hash: bytes
    client_id: str
    person: str
    scope: str
    redirect_uri: str
    code_challenge: str
    code_challenge_method: str
    expires_at: datetime
    used_at: datetime | None = None
    """When a token was issued from it: used again, it is a replay (RFC 6749 section 4.1.2)."""

    # -- authlib.oauth2.rfc6749.AuthorizationCodeMixin -------------------------------------------

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True, slots=True)
class Grant:
    """A person's grant of one permission to one app."""

    id: str
    client_id: str
    person: str
    controller: str
    scope: Scope
    consent_id: str
    granted_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    def live(self, at: datetime) -> bool:
        """In force at ``at``: not expired, not revoked."""
        return self.granted_at <= at < self.expires_at and self.revoked_at is None


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def check_redirect_uri(uri: str) -> str:
    """``uri`` if an app may register it as a redirect URI, else a clear error. As RFC 6749
    (3.1.2) and RFC 8252 (7.1, 7.3) and the OAuth 2.0 Security Best Current Practice (RFC 9700,
    2.1) have it: an absolute URI with no fragment, no user information and no wildcard;
    ``https``, or ``http`` on a loopback host only (a native app's local listener), or a
    native app's private-use scheme in reverse-domain form (``com.example.app:/callback``).
    Anything else (``javascript:``, ``data:``, ``file:``, plain ``http`` to another host) is
    refused: a code sent there could be read by others or run as script."""
    where = "redirect URI"
    text = uri.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        raise InvalidInput(f"{uri!r} is not a URI", where=where) from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidInput(f"{uri!r} is not an absolute URI (it has no scheme)", where=where)
    if parts.fragment or "#" in text:
        raise InvalidInput(
            f"{uri!r} has a fragment, which a redirect URI may not have", where=where
        )
    if "*" in text:
        raise InvalidInput(f"{uri!r} has a wildcard: register each URI in full", where=where)
    if scheme in {"https", "http"}:
        host = (parts.hostname or "").lower()
        if not host:
            raise InvalidInput(f"{uri!r} names no host", where=where)
        if parts.username is not None or parts.password is not None:
            raise InvalidInput(f"{uri!r} holds user information", where=where)
        if scheme == "http" and host not in LOOPBACK_HOSTS:
            raise InvalidInput(
                f"{uri!r} is plain http to {host}: use https (plain http only to a loopback "
                "address, 127.0.0.1, ::1 or localhost, as RFC 8252 7.3 allows native apps)",
                where=where,
            )
        return text
    if "." in scheme and scheme not in {"javascript", "data", "file", "vbscript", "blob"}:
        return text  # a private-use scheme (RFC 8252 7.1), e.g. com.reelix.app:/callback
    raise InvalidInput(
        f"{uri!r} uses the {scheme}: scheme; a redirect URI is https, http to a loopback "
        "address, or an app's own reverse-domain scheme (com.example.app:/callback)",
        where=where,
    )


def _app(row: Any) -> App:
    return App(
        row.client_id,
        row.name,
        row.party,
        row.agreement,
        row.secret_hash,
        tuple(u for u in row.redirect_uris.split("\n") if u),
        row.created_at,
        row.revoked_at,
    )


def _grant(row: Any) -> Grant:
    return Grant(
        row.id,
        row.client_id,
        row.person,
        row.controller,
        Scope.parse(row.scope),
        row.consent_id,
        row.granted_at,
        row.expires_at,
        row.revoked_at,
    )


# Built once: building the statements anew each time would cost more than running them.
_TOKEN_WITH_APP = (
    select(
        t.tokens_table,
        t.apps_table.c.name,
        t.apps_table.c.party,
        t.apps_table.c.agreement,
        t.apps_table.c.secret_hash,
        t.apps_table.c.redirect_uris,
        t.apps_table.c.created_at.label("app_created"),
        t.apps_table.c.revoked_at.label("app_revoked"),
    )
    .join(t.apps_table, t.apps_table.c.client_id == t.tokens_table.c.client_id)
    .where(t.tokens_table.c.token_hash == bindparam("token_hash"))
)
# Every request reads its token, its app and the app's reviews with this one statement, run
# through the driver's own cursor: SQLAlchemy's execution steps would cost several times what
# the query does. Only constant names and the driver's placeholder are formatted in.
_CALLER_SQL = (
    "SELECT t.token_hash, t.client_id, t.person, t.scope, t.issued_at, t.expires_at, "
    "t.revoked_at, a.name, a.party, a.agreement, a.secret_hash, a.redirect_uris, a.created_at, "
    "a.revoked_at, r.scope, r.approved "
    "FROM api_tokens t JOIN api_apps a ON a.client_id = t.client_id "
    "LEFT JOIN api_reviews r ON r.client_id = t.client_id "
    "WHERE t.token_hash = {mark} ORDER BY r.at, r.id"
)
_REVIEWS_OF_APP = (
    select(t.reviews_table.c.scope, t.reviews_table.c.approved)
    .where(t.reviews_table.c.client_id == bindparam("client_id"))
    .order_by(t.reviews_table.c.at, t.reviews_table.c.id)
)
_INSTANT = UTCDateTime()
_KEPT_CALLERS = 10_000
"""Apps' tokens a worker keeps between requests at most (all are dropped when it is full)."""


def _latest_approved(reviews: Iterable[tuple[str, Any]]) -> frozenset[Scope]:
    """The scopes whose newest review (the last of ``reviews``, oldest first) approved them."""
    latest: dict[str, bool] = {}
    for scope, ok in reviews:
        latest[scope] = bool(ok)
    return frozenset(Scope.parse(s) for s, ok in latest.items() if ok)


class PartnerApps:
    """Partner apps and everything issued to them, over one Accord store."""

    def __init__(self, accord: Accord) -> None:
        self.accord = accord
        self._callers: dict[bytes, tuple[int, Token, frozenset[Scope]]] = {}
        """Apps' own tokens with their apps' approved scopes, by token hash, as read at a
        registry revision (:meth:`token_and_approved`)."""

    # -- apps ----------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        *,
        party: str,
        agreement: str,
        redirect_uris: Iterable[str] = (),
        public: bool = False,
    ) -> tuple[App, str | None]:
        """Register an app of ``party`` under ``agreement``; returns it and its secret (shown once).

        A public app (a native or browser app that cannot keep a secret) gets no secret and may
        only use the authorization code flow with PKCE.
        """
        registered = self.accord.agreement(agreement).agreement
        if party not in {registered.provider, registered.recipient}:
            raise InvalidInput(
                f"{party} is not a party to agreement {agreement} "
                f"({registered.provider} and {registered.recipient} are)",
                where="app registration",
            )
        if not offered(registered, party):
            raise InvalidInput(
                f"agreement {agreement} lets {party} ask for nothing: no clause has it read or "
                "send",
                where="app registration",
            )
        uris = tuple(redirect_uris)
        for uri in uris:
            check_redirect_uri(uri)
        if public and not uris:
            raise InvalidInput(
                "a public app needs a redirect URI (it can only act for people)",
                where="app registration",
            )
        secret = None if public else secrets.token_urlsafe(32)
        app = App(
            client_id=uuid.uuid4().hex,
            name=name,
            party=party,
            agreement=agreement,
            secret_hash=None if secret is None else hash_token(secret),
            redirect_uris=uris,
            created_at=_now(),
        )
        with self.accord.session() as s, translate(StoreError, "registering an app"):
            s.execute(
                t.apps_table.insert().values(
                    client_id=app.client_id,
                    name=name,
                    party=party,
                    agreement=agreement,
                    secret_hash=app.secret_hash,
                    redirect_uris="\n".join(uris),
                    created_at=app.created_at,
                )
            )
        kind = "public app" if public else "app"
        self._log(app, "registered", f"{party} registered the {kind} {name!r}.", app.created_at)
        return app, secret

    def _log(
        self,
        app: App,
        event: AppEvent,
        reason: str,
        at: datetime,
        *,
        scope: Scope | None = None,
        approved: bool = False,
        about: tuple[str, ...] = (),
    ) -> None:
        """Put what happened to ``app`` in the ledger (after the store has it)."""
        self.accord.ledger.append(
            [
                AppEntry(
                    agreement=app.agreement,
                    reason=reason,
                    purpose=None if scope is None else scope.purpose,
                    categories=() if scope is None else (scope.category,),
                    about=about,
                    event=event,
                    client=app.client_id,
                    party=app.party,
                    approved=approved,
                    at=at,
                )
            ]
        )

    def get(self, client_id: str) -> App | None:
        """The app ``client_id``, or None."""
        with self.accord.session() as s, translate(StoreError, "reading an app"):
            row = s.execute(
                select(t.apps_table).where(t.apps_table.c.client_id == client_id)
            ).one_or_none()
        return None if row is None else _app(row)

    def under(self, agreement: str) -> list[App]:
        """The apps registered under ``agreement`` (revoked ones included), by name."""
        a = t.apps_table
        with self.accord.session() as s, translate(StoreError, "listing apps"):
            rows = s.execute(
                select(a).where(a.c.agreement == agreement).order_by(a.c.name, a.c.client_id)
            ).all()
        return [_app(r) for r in rows]

    def require(self, client_id: str) -> App:
        """The app ``client_id``, or :class:`NotFound`."""
        app = self.get(client_id)
        if app is None:
            raise NotFound(f"no app {client_id!r} is registered")
        return app

    def offered(self, app: App) -> frozenset[Scope]:
        """The scopes ``app`` may ask for: its party's pairs of its agreement's clauses."""
        return frozenset(offered(self.accord.policy().registry[app.agreement].agreement, app.party))

    def all_offered(self) -> list[frozenset[Scope]]:
        """The scopes offered to each party of each registered agreement."""
        out = []
        for registered in self.accord.agreements():
            a = registered.agreement
            for party in (a.provider, a.recipient):
                out.append(frozenset(offered(a, party)))
        return out

    def revoke_app(self, client_id: str, at: datetime | None = None) -> int:
        """Revoke an app: every token stops working at once and every grant is withdrawn.

        Returns how many grants were withdrawn.
        """
        when = at or _now()
        app = self.require(client_id)
        with self.accord.session() as s, translate(StoreError, "revoking an app"):
            s.execute(
                update(t.apps_table)
                .where(t.apps_table.c.client_id == client_id)
                .values(revoked_at=when)
            )
            count_change(s)  # every worker's kept tokens of the app are dropped
        withdrawn = self._withdraw(client_id, None, None, when)
        self._log(
            app,
            "revoked",
            f"The app {app.name!r} of {app.party} was revoked: its tokens stopped working and "
            f"{withdrawn} grants were withdrawn.",
            when,
        )
        return withdrawn

    # -- review and test people ------------------------------------------------------------------

    def review(
        self,
        client_id: str,
        scope: Scope,
        *,
        approved: bool,
        reviewer: str,
        findings: str,
        at: datetime | None = None,
    ) -> None:
        """Record an app review of one permission; only an approved one reaches the public."""
        app = self.require(client_id)
        if scope not in self.offered(app):
            raise InvalidInput(
                f"agreement {app.agreement} does not offer {scope} to {app.party}",
                where=f"review of app {client_id}",
            )
        when = at or _now()
        with self.accord.session() as s, translate(StoreError, "recording an app review"):
            s.execute(
                t.reviews_table.insert().values(
                    client_id=client_id,
                    scope=str(scope),
                    approved=approved,
                    reviewer=reviewer,
                    findings=findings,
                    at=when,
                )
            )
            count_change(s)  # every worker reads the app's reviews again
        verdict = "approved" if approved else "did not approve"
        self._log(
            app,
            "reviewed",
            f"A review {verdict} the app {app.name!r} of {app.party} for {scope.describe()}.",
            when,
            scope=scope,
            approved=approved,
        )

    def approved(self, client_id: str) -> frozenset[Scope]:
        """The scopes whose newest review approved them."""
        with self.accord.session() as s:
            return self._approved(s, client_id)

    @staticmethod
    def _approved(s: Session, client_id: str) -> frozenset[Scope]:
        with translate(StoreError, "reading app reviews"):
            rows = s.execute(_REVIEWS_OF_APP, {"client_id": client_id}).all()
        return _latest_approved((scope, ok) for scope, ok in rows)

    def add_test_person(self, client_id: str, person: str) -> None:
        """Make ``person`` one of the partner's own test people for ``client_id``.

        The person is named by their id at the party holding their data: the app's counterparty
        in its agreement. That party must hold them (an unknown id would make a test person no
        request can ever be about), and not have erased them. Adding one twice changes nothing.
        """
        app = self.require(client_id)
        holder = self.data_holder(app)
        where = f"test person of app {client_id}"
        with self.accord.session() as s:
            if is_erased(s, holder, person):
                raise InvalidInput(
                    f"party {holder} erased person {person!r}: no record about them is taken again",
                    where=where,
                )
            try:
                PeopleRepository(s).get(holder, person)
            except NotFound:
                raise InvalidInput(
                    f"party {holder} holds no person {person!r}: a test person is one of the "
                    f"people {holder} has recorded (`accord person load --party {holder}`)",
                    where=where,
                ) from None
            tp = t.test_people_table
            with translate(StoreError, "adding a test person"):
                known = s.execute(
                    select(tp.c.person).where(tp.c.client_id == client_id, tp.c.person == person)
                ).first()
                if known is None:
                    s.execute(tp.insert().values(client_id=client_id, person=person))
        if known is None:
            self._log(
                app,
                "test_person",
                f"{app.party} made one of {holder}'s people a test person of the app {app.name!r}.",
                _now(),
                about=person_refs(holder, [person]),
            )

    def data_holder(self, app: App) -> str:
        """The party whose people ``app`` reads about or acts for: its agreement's other party."""
        registered = self.accord.agreement(app.agreement).agreement
        return registered.recipient if app.party == registered.provider else registered.provider

    def test_people(self, client_id: str) -> frozenset[str]:
        """The partner's own test people for ``client_id``."""
        tp = t.test_people_table
        with self.accord.session() as s, translate(StoreError, "reading test people"):
            return frozenset(
                s.execute(select(tp.c.person).where(tp.c.client_id == client_id)).scalars()
            )

    # -- grants --------------------------------------------------------------------------------

    def grant(
        self,
        app: App,
        person: str,
        controller: str,
        scopes: Iterable[Scope],
        *,
        notice: str,
        vppa_months: int | None = None,
        at: datetime | None = None,
    ) -> list[Grant]:
        """Record a person's consent to each permission they approved, and grant it to ``app``.

        Each permission becomes its own consent record (given on the consent screen, distinct and
        separate, withdrawable on the same screen), recorded through :meth:`Accord.grant` so it
        reaches the ledger. Data access lasts :data:`GRANT_DAYS`; a consent to disclose what the
        person watched lasts the months they chose, at most :data:`VPPA_MAX_MONTHS`. Earlier
        grants of the same permissions to the same app are replaced (a renewal).
        """
        when = at or _now()
        chosen = sorted(set(scopes))
        months_ok = vppa_months is not None and 1 <= vppa_months <= VPPA_MAX_MONTHS
        if any(s.viewing for s in chosen) and not months_ok:
            raise InvalidInput(
                f"a consent to share what you watched lasts 1 to {VPPA_MAX_MONTHS} months "
                f"(18 U.S.C. 2710(b)(2)(B)); got {vppa_months}",
                where="consent screen",
            )
        with self.accord.session() as s:
            jurisdiction = PeopleRepository(s).get(controller, person).jurisdiction
        self._withdraw(app.client_id, person, chosen, when)
        grants: list[Grant] = []
        access_until = when + timedelta(days=GRANT_DAYS)
        for scope in chosen:
            consent_until = (
                months_later(when, vppa_months or VPPA_MAX_MONTHS)
                if scope.viewing
                else access_until
            )
            consent = self.accord.grant(
                Consent(
                    id=f"oauth-{uuid.uuid4().hex}",
                    person=person,
                    controller=controller,
                    recipient=app.party,
                    purposes=frozenset({scope.purpose}),
                    categories=frozenset({scope.category}),
                    jurisdiction=jurisdiction,
                    given_at=when,
                    method=Method.OAUTH_CONSENT_SCREEN,
                    notice=notice,
                    operations=frozenset({scope.operation}),
                    distinct_and_separate=True,
                    withdrawal_method=Method.OAUTH_CONSENT_SCREEN,
                    expires_at=consent_until,
                    scope=ConsentScope.ONGOING,
                )
            )
            grants.append(
                Grant(
                    uuid.uuid4().hex,
                    app.client_id,
                    person,
                    controller,
                    scope,
                    consent.id,
                    when,
                    min(access_until, consent_until),
                    None,
                )
            )
        with self.accord.session() as s, translate(StoreError, "recording grants"):
            for g in grants:
                s.execute(
                    t.grants_table.insert().values(
                        id=g.id,
                        client_id=g.client_id,
                        person=g.person,
                        controller=g.controller,
                        scope=str(g.scope),
                        consent_id=g.consent_id,
                        granted_at=g.granted_at,
                        expires_at=g.expires_at,
                    )
                )
        return grants

    def grants(self, client_id: str, person: str) -> list[Grant]:
        """Every grant ``person`` made to ``client_id``, live or not."""
        g = t.grants_table
        with self.accord.session() as s, translate(StoreError, "reading grants"):
            rows = s.execute(
                select(g).where(g.c.client_id == client_id, g.c.person == person)
            ).all()
        return [_grant(r) for r in rows]

    def granted_by(self, person: str, controller: str, at: datetime | None = None) -> list[Grant]:
        """Every grant in force that ``person`` (of ``controller``) made, to any app."""
        when = at or _now()
        g = t.grants_table
        with self.accord.session() as s, translate(StoreError, "reading grants"):
            rows = s.execute(
                select(g)
                .where(g.c.person == person, g.c.controller == controller)
                .order_by(g.c.client_id, g.c.scope)
            ).all()
        return [grant for grant in map(_grant, rows) if grant.live(when)]

    def made_by(self, person: str, controller: str) -> list[Grant]:
        """Every grant ``person`` (of ``controller``) made and did not take back, lapsed or
        not: a lapsed grant's consent may still be in force (a VPPA consent for 12 months
        behind a 90-day grant)."""
        g = t.grants_table
        with self.accord.session() as s, translate(StoreError, "reading grants"):
            rows = s.execute(
                select(g)
                .where(g.c.person == person, g.c.controller == controller)
                .order_by(g.c.client_id, g.c.scope)
            ).all()
        return [grant for grant in map(_grant, rows) if grant.revoked_at is None]

    def live_scopes(
        self, client_id: str, person: str, at: datetime | None = None
    ) -> frozenset[Scope]:
        """The permissions ``person`` has granted ``client_id`` that are in force at ``at``."""
        when = at or _now()
        return frozenset(g.scope for g in self.grants(client_id, person) if g.live(when))

    def revoke(
        self,
        client_id: str,
        person: str,
        scopes: Iterable[Scope] | None = None,
        at: datetime | None = None,
    ) -> int:
        """Revoke a person's grants to an app (all, or only ``scopes``); returns how many."""
        return self._withdraw(client_id, person, None if scopes is None else list(scopes), at)

    def grants_of_consent(self, consent_id: str) -> list[Grant]:
        """The grants a consent stands behind (one, for a consent given on the consent screen)."""
        g = t.grants_table
        with self.accord.session() as s, translate(StoreError, "reading grants"):
            rows = s.execute(select(g).where(g.c.consent_id == consent_id)).all()
        return [_grant(r) for r in rows]

    def replace_consent(self, old_id: str, new_id: str) -> int:
        """Let the grants behind consent ``old_id`` stand behind ``new_id`` instead (the record
        that replaced it when the person narrowed it); how many."""
        g = t.grants_table
        with self.accord.session() as s, translate(StoreError, "moving grants to a consent"):
            done = s.execute(update(g).where(g.c.consent_id == old_id).values(consent_id=new_id))
        return int(done.rowcount)  # type: ignore[attr-defined]

    def _withdraw(
        self,
        client_id: str,
        person: str | None,
        scopes: list[Scope] | None,
        at: datetime | None,
    ) -> int:
        when = at or _now()
        live = [
            g
            for g in self._all_grants(client_id, person)
            if g.revoked_at is None and (scopes is None or g.scope in scopes)
        ]
        if not live:
            return 0
        with self.accord.session() as s, translate(StoreError, "revoking grants"):
            s.execute(
                update(t.grants_table)
                .where(t.grants_table.c.id.in_([g.id for g in live]))
                .values(revoked_at=when)
            )
        # Withdrawn even when the grant has lapsed: a VPPA consent can outlive its grant.
        for g in live:
            self.accord.withdraw(g.consent_id, at=max(when, g.granted_at))
        return len(live)

    def _all_grants(self, client_id: str, person: str | None) -> list[Grant]:
        g = t.grants_table
        query = select(g).where(g.c.client_id == client_id)
        if person is not None:
            query = query.where(g.c.person == person)
        with self.accord.session() as s, translate(StoreError, "reading grants"):
            return [_grant(r) for r in s.execute(query).all()]

    # -- codes ---------------------------------------------------------------------------------

    def save_code(
        self,
        code: str,
        *,
        client_id: str,
        person: str,
        scopes: Iterable[Scope],
        redirect_uri: str,
        code_challenge: str,
        code_challenge_method: str,
    ) -> None:
        """Keep an authorization code (its hash) for one exchange within :data:`CODE_SECONDS`;
        forget those past :data:`CODE_KEPT_SECONDS`."""
        now = _now()
        c = t.codes_table
        with self.accord.session() as s, translate(StoreError, "saving an authorization code"):
            s.execute(delete(c).where(c.c.expires_at < now - timedelta(seconds=CODE_KEPT_SECONDS)))
            s.execute(
                t.codes_table.insert().values(
                    code_hash=hash_token(code),
                    client_id=client_id,
                    person=person,
                    scope=render(scopes),
                    redirect_uri=redirect_uri,
                    code_challenge=code_challenge,
                    code_challenge_method=code_challenge_method,
                    expires_at=now + timedelta(seconds=CODE_SECONDS),
                )
            )

    def find_code(self, code: str, client_id: str) -> Code | None:
        """The unexpired code ``code`` issued to ``client_id`` (used or not), or None."""
        c = t.codes_table
        with self.accord.session() as s, translate(StoreError, "reading an authorization code"):
            row = s.execute(
                select(c).where(c.c.code_hash == hash_token(code), c.c.client_id == client_id)
            ).one_or_none()
        if row is None or row.expires_at <= _now():
            return None
        return Code(
            row.code_hash,
            row.client_id,
            row.person,
            row.scope,
            row.redirect_uri,
            row.code_challenge,
            row.code_challenge_method,
            row.expires_at,
            row.used_at,
        )

    def replayed_code(self, code: Code) -> int:
        """``code`` was used a second time (RFC 6749 section 4.1.2): forget it, so no token is
        ever issued from it again, revoke every token issued from it, and log that in the
        ledger; how many were revoked. The first use may have been an attacker's, or this one.

        The code's row is deleted first: an exchange issuing a token from it holds that row
        until its token is stored, so the tokens revoked here include any issued at this moment.
        """
        now = _now()
        c, k = t.codes_table, t.tokens_table
        with self.accord.session() as s, translate(StoreError, "revoking a replayed code's tokens"):
            s.execute(delete(c).where(c.c.code_hash == code.code_hash))
            done = s.execute(
                update(k)
                .where(k.c.code_hash == code.code_hash, k.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            revoked = int(done.rowcount)  # type: ignore[attr-defined]
            count_change(s)  # every worker drops a token it kept
        app = self.get(code.client_id)
        if app is not None:
            self._log(
                app,
                "tokens_revoked",
                f"An authorization code of the app {app.name!r} was used a second time (RFC 6749 "
                f"section 4.1.2): it was refused, and the {revoked} access token"
                f"{'' if revoked == 1 else 's'} issued from it revoked.",
                now,
                about=person_refs(self.data_holder(app), [code.person]),
            )
        return revoked

    # -- tokens --------------------------------------------------------------------------------

    def save_token(
        self,
        access_token: str,
        *,
        client_id: str,
        person: str | None,
        scopes: Iterable[Scope],
        expires_in: int,
        code: Code | None = None,
    ) -> bool:
        """Keep an access token's hash, what it is for, when it expires, and the authorization
        ``code`` it is issued from, marking the code used; False (nothing kept) if the code was
        used already, or forgotten as replayed (:meth:`replayed_code`)."""
        now = _now()
        with self.accord.session() as s, translate(StoreError, "saving an access token"):
            if code is not None:
                c = t.codes_table
                claimed = s.execute(
                    update(c)
                    .where(c.c.code_hash == code.code_hash, c.c.used_at.is_(None))
                    .values(used_at=now)
                )
                if int(claimed.rowcount) != 1:  # type: ignore[attr-defined]
                    return False
            s.execute(
                t.tokens_table.insert().values(
                    token_hash=hash_token(access_token),
                    client_id=client_id,
                    person=person,
                    scope=render(scopes),
                    issued_at=now,
                    expires_at=now + timedelta(seconds=expires_in),
                    code_hash=None if code is None else code.code_hash,
                )
            )
            # Past the request's deadline its caller was answered 503: nothing is issued, and
            # the code's use is undone with the token.
            request_deadline.check()
        return True

    def token(self, access_token: str) -> Token | None:
        """The token ``access_token`` names (live or not), with its app; None if unknown."""
        with self.accord.session() as s:
            return self._token(s, access_token)

    def token_and_approved(self, access_token: str) -> tuple[Token | None, frozenset[Scope]]:
        """:meth:`token`, and the scopes review approved for its app, read together (what every
        request checks first: one statement, so one snapshot of the store).

        An app's own token is kept with its approved scopes, and used again for as long as the
        registry's revision (one indexed row, read first) has not moved: revoking a token or an
        app, and reviewing an app, move it, so every worker sharing the store reads the token
        again at the very next request.
        """
        engine = self.accord.engine
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        hashed = hash_token(access_token)
        with translate(StoreError, "reading an access token"), pooled(engine) as connection:
            # A connection of the pool's (or the request's), without SQLAlchemy's around it: one
            # statement, read at once.
            cursor = connection.cursor()
            try:
                # The revision first: a revocation or review counts a change of the registry
                # in its own transaction, so one committed after this read leaves a newer
                # revision that the next request sees, and one committed before it is in
                # the rows read below.
                cursor.execute(REVISION_SQL)
                found = cursor.fetchone()
                revision = int(found[0]) if found is not None else 0
                remember_revision(engine, revision)  # the request's decision reads it here
                kept = self._callers.get(hashed)
                if kept is not None and kept[0] == revision:
                    return kept[1], kept[2]
                cursor.execute(_CALLER_SQL.format(mark=mark), (hashed,))
                rows = cursor.fetchall()
            finally:
                cursor.close()
        if not rows:
            return None, frozenset()
        first, dialect = rows[0], engine.dialect
        app = App(
            first[1],
            first[7],
            first[8],
            first[9],
            None if first[10] is None else bytes(first[10]),
            tuple(u for u in first[11].split("\n") if u),
            _instant(first[12], dialect),
            _instant(first[13], dialect),
        )
        token = Token(
            bytes(first[0]),
            app,
            first[2],
            parse_all(first[3]),
            _instant(first[4], dialect),
            _instant(first[5], dialect),
            _instant(first[6], dialect),
        )
        approved = _latest_approved((r[14], r[15]) for r in rows if r[14] is not None)
        if token.person is None:
            # Only apps' own tokens are kept: a person's token is checked against their grants
            # at each request anyway, and an erasure deletes it without a change of the registry.
            if len(self._callers) >= _KEPT_CALLERS:
                self._callers.clear()
            self._callers[hashed] = (revision, token, approved)
        return token, approved

    @staticmethod
    def _token(s: Session, access_token: str) -> Token | None:
        with translate(StoreError, "reading an access token"):
            row = s.execute(_TOKEN_WITH_APP, {"token_hash": hash_token(access_token)}).one_or_none()
        if row is None:
            return None
        app = App(
            row.client_id,
            row.name,
            row.party,
            row.agreement,
            row.secret_hash,
            tuple(u for u in row.redirect_uris.split("\n") if u),
            row.app_created,
            row.app_revoked,
        )
        return Token(
            row.token_hash,
            app,
            row.person,
            parse_all(row.scope),
            row.issued_at,
            row.expires_at,
            row.revoked_at,
        )

    def revoke_token(self, token: Token, at: datetime | None = None) -> None:
        """Revoke one access token (RFC 7009)."""
        with self.accord.session() as s, translate(StoreError, "revoking an access token"):
            s.execute(
                update(t.tokens_table)
                .where(t.tokens_table.c.token_hash == token.token_hash)
                .values(revoked_at=at or _now())
            )
            count_change(s)  # every worker drops the token it kept


def _instant(value: Any, dialect: Dialect) -> Any:
    """A stored instant as the column type reads it: an aware UTC datetime, or None."""
    return _INSTANT.process_result_value(value, dialect)


def months_later(moment: datetime, months: int) -> datetime:
    """``months`` calendar months after ``moment`` (the day clamped to 28 where needed)."""
    years, month0 = divmod(moment.month - 1 + months, 12)
    return moment.replace(year=moment.year + years, month=month0 + 1, day=min(moment.day, 28))
