"""Who is calling and what their token reaches, checked before anything goes to the door.

A bearer token is looked up by its hash at each request, with the person's grants behind it, so
a revoked token, a revoked app or a revoked or expired grant refuses the very next request (an
app's own token is kept between requests only until the registry's revision moves, which every
revocation and review does: see :meth:`accord.api.apps.PartnerApps.token_and_approved`). A
refusal here is logged to the ledger as a refused decision, like the gateway's own refusals;
before any of that, a client address that had too many tokens refused is answered 429 without its
token being looked up, and counted (:mod:`accord.api.refusals`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from accord.api.apps import App, PartnerApps, Token
from accord.api.errors import Forbidden, InvalidToken, RateLimited
from accord.api.ratelimit import Limiter
from accord.api.refusals import RefusalLimit, address_key
from accord.api.scopes import Scope, covered, needed
from accord.ledger.entries import DecisionEntry
from accord.requests import Request, SubjectsKind
from accord.service import Accord, refusal_entry

OTHER_AGREEMENT = "api:other-agreement"
SCOPE_NOT_GRANTED = "api:scope-not-granted"
NOT_REVIEWED = "api:not-reviewed"
NOT_THIS_PERSON = "api:not-this-person"
NO_DELEGATION = "api:no-delegation"
INVALID_TOKEN = "api:invalid-token"  # noqa: S105 - a rule id, not a secret


@dataclass(frozen=True, slots=True)
class Caller:
    """An app with a live token; for a person's token, the person and their live grants."""

    token: Token
    scopes: frozenset[Scope]
    """The token's scopes still in force (for a person: those they have not revoked)."""
    approved: frozenset[Scope] | None = None
    """The scopes review approved for the app, read with the token; None: read them when needed."""

    @property
    def app(self) -> App:
        """The app the token was issued to."""
        return self.token.app

    @property
    def person(self) -> str | None:
        """The person who delegated access, or None for the app acting for itself."""
        return self.token.person


def refusal(
    accord: Accord,
    message: str,
    rule: str,
    *,
    party: str,
    client: str | None,
    purpose: str | None = None,
    outcome: str = "nothing was done",
    action: str = "read",
) -> Forbidden:
    """A :class:`Forbidden` for a call outside the exchanges (a function of another kind of
    caller), logged to the ledger first as a refused decision about no one; ``outcome`` ends its
    reason ("no ad was chosen")."""
    refused = Forbidden(message, rule=rule)
    entry = DecisionEntry(
        agreement=None,
        purpose=purpose,
        reason=f"Refused: {message}; {outcome}.",
        people=0,
        allowed=False,
        rules=(rule,),
        recipient=party,
        action=action,
        client=client,
    )
    receipts = accord.ledger.append([entry])
    refused.receipt = receipts[0].index if receipts else None
    return refused


class Access:
    """Authenticates bearer tokens, limits each partner's rate, checks requests against tokens."""

    def __init__(
        self, accord: Accord, apps: PartnerApps, limiter: Limiter, refusals: RefusalLimit
    ) -> None:
        self.accord = accord
        self.apps = apps
        self._limiter = limiter
        self.refusals = refusals
        """The limit on refused tokens per client address, and the tally of those past it."""

    def caller(self, authorization: str | None, peer: str | None = None) -> Caller:
        """The caller an ``Authorization: Bearer`` header names (RFC 6750 section 2.1), for a
        request from the address ``peer``; a token refused is logged to the ledger before it is
        answered, or past the address's limit of refusals counted and answered 429."""
        address = address_key(peer)
        self.refusals.before(address)
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise self._refused_token(
                address, "send an access token as 'Authorization: Bearer <token>'"
            )
        token, approved = self.apps.token_and_approved(value.strip())
        if token is None:
            raise self._refused_token(address, "the access token is not one this server issued")
        now = datetime.now(UTC)
        if token.app.revoked_at is not None:
            raise self._refused_token(address, f"app {token.app.client_id} was revoked", token.app)
        if token.revoked_at is not None:
            raise self._refused_token(address, "the access token was revoked", token.app)
        if now >= token.expires_at:
            raise self._refused_token(
                address, f"the access token expired at {token.expires_at.isoformat()}", token.app
            )
        # One limit per partner (party), over all its apps. A store that cannot be reached
        # raises RateLimitStoreUnreachable: refused, never served unlimited.
        partner = token.app.party
        wait = self._limiter.hit(partner)
        if wait is not None:
            # Rounded up: a client that waits as long as told is not refused again.
            raise RateLimited(
                f"partner {partner} is over its limit of {self._limiter.limit}",
                retry_after=max(1, math.ceil(wait)),
            )
        scopes = token.scopes
        if token.person is not None:
            live = self.apps.live_scopes(token.app.client_id, token.person, now)
            scopes = frozenset(s for s in scopes if s in live)
        return Caller(token, scopes, approved)

    def _refused_token(
        self, address: str, message: str, app: App | None = None
    ) -> InvalidToken | RateLimited:
        """:class:`InvalidToken`, logged first as a refusal about no one: of ``app``'s party
        where the token was one of its apps' (never the token itself); past ``address``'s limit
        of refusals, :class:`RateLimited` instead, counted and not logged one by one."""
        over = self.refusals.refused(address)
        if over is not None:
            return over
        entry = DecisionEntry(
            agreement=app.agreement if app else None,
            reason=f"Refused: {message}; nothing was released.",
            people=0,
            allowed=False,
            rules=(INVALID_TOKEN,),
            recipient=app.party if app else None,
            client=app.client_id if app else None,
        )
        self.accord.ledger.append([entry])
        return InvalidToken(message)

    def close(self) -> None:
        """Let go of the rate limiters' connections."""
        self._limiter.close()
        self.refusals.close()

    def check(self, caller: Caller, request: Request) -> Request:
        """``request`` as the caller may make it (acting for its person), or :class:`Forbidden`.

        Refusals are logged to the ledger before they are raised.
        """
        try:
            return self._checked(caller, request)
        except Forbidden as exc:
            self._log(request, exc, caller.app.client_id)
            raise

    def _checked(self, caller: Caller, request: Request) -> Request:
        app = caller.app
        if request.agreement != app.agreement:
            raise Forbidden(
                f"app {app.client_id} is registered under agreement {app.agreement}, "
                f"not {request.agreement}",
                rule=OTHER_AGREEMENT,
            )
        request = self._as_person(caller, request)
        need = needed(request.categories, request.purpose, request.operation)
        missing = sorted(n for n in need if not covered(n, caller.scopes))
        if missing:
            whose = "the person has not granted" if caller.person else "the token does not hold"
            raise Forbidden(
                f"{whose} {' '.join(map(str, missing))}",
                rule=SCOPE_NOT_GRANTED,
            )
        approved = self.apps.approved(app.client_id) if caller.approved is None else caller.approved
        unreviewed = sorted(n for n in need if not covered(n, approved))
        if unreviewed:
            self._only_test_people(caller, request, unreviewed)
        return request

    def _as_person(self, caller: Caller, request: Request) -> Request:
        """A person's token acts for that person only; an app's own token for no one."""
        subjects = request.subjects
        if caller.person is None:
            if request.on_behalf_of is not None or subjects.relative:
                raise Forbidden(
                    "acting for a person, or reading about their friends or threads, needs that "
                    "person's own authorization (the authorization code flow)",
                    rule=NO_DELEGATION,
                )
            return request
        person = caller.person
        named = {request.on_behalf_of, subjects.anchor, *subjects.people} - {None}
        if named - {person}:
            raise Forbidden(
                "the token is for one person; the request also names "
                f"{', '.join(sorted(str(n) for n in named - {person}))}",
                rule=NOT_THIS_PERSON,
            )
        if subjects.kind is SubjectsKind.ALL:
            raise Forbidden(
                "a person's token reads about that person only; name them in subjects",
                rule=NOT_THIS_PERSON,
            )
        return Request(
            requester=request.requester,
            agreement=request.agreement,
            clause=request.clause,
            operation=request.operation,
            purpose=request.purpose,
            categories=request.categories,
            at=request.at,
            fields=request.fields,
            subjects=subjects,
            on_behalf_of=person,
            title=request.title,
            id=request.id,
        )

    def _only_test_people(self, caller: Caller, request: Request, unreviewed: list[Scope]) -> None:
        test = self.apps.test_people(caller.app.client_id)
        about = {request.on_behalf_of, request.subjects.anchor, *request.subjects.people} - {None}
        if request.subjects.kind is SubjectsKind.ALL and request.on_behalf_of is None:
            about.add("everyone")
        outside = sorted(str(p) for p in about - test)
        if outside or not about:
            raise Forbidden(
                f"app {caller.app.client_id} has no approved review for "
                f"{' '.join(map(str, unreviewed))}: until then it works only for the partner's "
                f"own test people, not {', '.join(outside) or 'these people'}",
                rule=NOT_REVIEWED,
            )

    def _log(self, request: Request, exc: Forbidden, client: str) -> None:
        reason = f"Refused: {exc.message}; nothing was released."
        entry = refusal_entry(request, exc.rule, reason, request.at, client)
        receipts = self.accord.ledger.append([entry])
        exc.receipt = receipts[0].index if receipts else None
