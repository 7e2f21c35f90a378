"""The partner API proper: exchanges through the one door, and a person's permissions.

``POST /v1/agreements/{agreement}/clauses/{clause}/exchanges`` carries every flow of an
agreement: reads of records, aggregates or matches, and writes on a person's behalf. The token's
checks (:mod:`accord.api.access`) run first; then :meth:`accord.gateway.Gateway.exchange` decides,
fetches, logs and releases.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import to_json
from starlette.exceptions import HTTPException
from starlette.requests import Request as HttpRequest
from starlette.responses import Response

from accord.api.access import NO_DELEGATION, Access, Caller, refusal
from accord.api.apps import PartnerApps
from accord.api.errors import ExchangeTimedOut
from accord.api.handoff import ExchangeThreads, Running, Timeouts
from accord.api.problems import PROBLEM_RESPONSES
from accord.api.scopes import Scope
from accord.consent import Operation
from accord.erasure import DEADLINE as ERASURE_DEADLINE
from accord.gateway import Exchange, Gateway, Noise, Release
from accord.requests import Request, Subjects, SubjectsKind
from accord.store.driver import reads_shared

Scalar = str | int | float | bool | None
Key = Annotated[str, Field(min_length=1, max_length=200)]


_EMPTY_DEFAULT: dict[str, Any] = {"default": []}
"""An empty list's default as the schema shows it: made by a factory, the default is not
deep-copied at each request (as ``default=[]`` is), and the schema still says it."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubjectsIn(_In):
    """Whom a request is about."""

    kind: Literal["all", "people", "friends_of", "threads_of"] = Field(
        default="all", description="Everyone, named people, or a person's friends or threads."
    )
    people: list[Key] = Field(
        default_factory=list,
        max_length=1000,
        description="For kind 'people'.",
        json_schema_extra=_EMPTY_DEFAULT,
    )
    anchor: Key | None = Field(
        default=None, description="The person whose friends or threads (kinds *_of)."
    )


class ExchangeIn(_In):
    """One exchange under a clause: what to read or write, for what purpose, about whom."""

    collection: Key = Field(description="The collection read (or written into).")
    operation: Literal["read", "write"] = "read"
    purpose: Key = Field(description="The purpose (a fideslang data use key).")
    categories: list[Key] = Field(
        min_length=1, max_length=20, description="Every data category the exchange moves."
    )
    fields: list[Key] = Field(
        default_factory=list, max_length=100, json_schema_extra=_EMPTY_DEFAULT
    )
    subjects: SubjectsIn = Field(default_factory=SubjectsIn)
    on_behalf_of: Key | None = Field(
        default=None, description="The person acted for (a person's token fills it in)."
    )
    title: Key | None = Field(default=None, description="The one title a read is about (VPPA).")
    where: dict[Key, Scalar] | None = Field(default=None, max_length=20)
    rows: list[dict[Key, Scalar]] | None = Field(default=None, max_length=1000)
    group_by: list[Key] = Field(
        default_factory=list, max_length=8, json_schema_extra=_EMPTY_DEFAULT
    )
    measures: dict[Key, Key] | None = Field(default=None, max_length=16)
    epsilon: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description=(
            "For an aggregate under a clause with a privacy budget: the epsilon the answer "
            "spends of each contributor's budget and of the clause's (default: a tenth of the "
            "clause's budget)."
        ),
    )
    max_rows: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description=(
            "For the same: the most rows each person contributes to the answer (default 5); "
            "the noise grows with it."
        ),
    )


class DecisionOut(BaseModel):
    """The decision, as the ledger holds it."""

    allowed: bool
    reason: str
    rules: list[str]


class ReceiptOut(BaseModel):
    """Where an entry sits in the ledger (RFC 9162): index, leaf hash, tree size."""

    index: int
    leaf_hash: str
    tree_size: int


class NoiseOut(BaseModel):
    """How an aggregate under a clause with a privacy budget was made differentially private."""

    epsilon: float = Field(description="What the answer spent of each contributor's budget.")
    delta: float
    mechanism: str
    max_rows: int = Field(description="The most rows each person contributed.")
    threshold: int = Field(
        description="A group shows only if its noisy count of people reaches this."
    )
    description: str
    spend: ReceiptOut = Field(description="The ledger receipt of the spend (a budget entry).")


class ExchangeOut(BaseModel):
    """What crossed the door, with the ledger receipts of the decision and the release."""

    decision: DecisionOut
    granularity: str
    columns: list[str]
    rows: list[list[Any]]
    people: int = Field(
        description=(
            "How many people the rows are about. For an aggregate, only what the rows shown "
            "imply: the clause's minimum when any row is shown, else 0; nothing is said of "
            "groups or people below the minimum."
        )
    )
    written: int
    withheld: dict[str, int]
    receipts: list[ReceiptOut]
    noise: NoiseOut | None = Field(
        default=None,
        description=(
            "Under a clause with a privacy budget: the figures are noisy, which groups show was "
            "chosen with noise, and the answer spent this much of every contributor's budget."
        ),
    )


class PermissionOut(BaseModel):
    """One permission a person granted an app."""

    scope: str
    description: str
    granted_at: datetime
    expires_at: datetime
    status: Literal["granted", "expired", "revoked"]


class AppOut(BaseModel):
    """The calling app: its agreement, what it may ask for, what review approved, its token."""

    client_id: str
    name: str
    party: str
    agreement: str
    offered: list[str]
    approved: list[str]
    token_scopes: list[str]
    person: str | None


EXCHANGE_THREADS = 40
"""Exchanges a worker runs at once (as many as the thread pool FastAPI runs other routes in)."""
EXCHANGE_SECONDS = 30.0
"""How long an exchange may take by default (``ACCORD_API_EXCHANGE_SECONDS``)."""
DOOR_SHARE = 0.8
"""The share of an exchange's time after which the door no longer logs its release: the rest
is for a release being logged then to commit before the caller is answered 503, so that a
release is logged only if it is answered. One whose commit takes longer still is noted in the
ledger as never received (:meth:`accord.gateway.Gateway.note_unreceived`)."""
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "accord_exchange_deadline", default=None
)
_WATCHED: contextvars.ContextVar[Running | None] = contextvars.ContextVar(
    "accord_exchange_watched", default=None
)
"""The exchange under way in this thread, as its deadline watches it."""


class Services:
    """What the routes need: the door, the partner apps, the access checks, party credentials,
    and the threads exchanges run in (shut down with :meth:`close`)."""

    def __init__(
        self,
        gateway: Gateway,
        apps: PartnerApps,
        access: Access,
        party_tokens: dict[str, str],
        *,
        erasure_deadline: timedelta = ERASURE_DEADLINE,
        exchange_seconds: float = EXCHANGE_SECONDS,
    ) -> None:
        self.gateway = gateway
        self.apps = apps
        self.access = access
        self.party_tokens = party_tokens
        self.threads = ExchangeThreads(EXCHANGE_THREADS, "accord-exchange")
        self.timeouts = Timeouts()
        """What answers an exchange 503 at the end of its time."""
        self.erasure_deadline = erasure_deadline
        """How long a recipient has to acknowledge an erasure notice."""
        self.exchange_seconds = exchange_seconds
        """How long an exchange may take before it is answered 503 and abandoned."""

    def close(self) -> None:
        """Wait for the exchanges under way, then stop their threads."""
        self.threads.shutdown(wait=True)


async def services(request: HttpRequest) -> Services:
    """The app's services (set by the factory); async, as it does no I/O (no thread hop)."""
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="OAuth 2.0 bearer token",
    description="An access token from /oauth/token (RFC 6750).",
)


def caller(
    request: HttpRequest,
    svc: ServicesDep,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> Caller:
    """The authenticated caller (401 otherwise); rate-limited per partner, and refused tokens
    per client address."""
    peer = request.scope.get("client")
    found = svc.access.caller(request.headers.get("authorization"), peer[0] if peer else None)
    request.state.client_id = found.app.client_id
    return found


CallerDep = Annotated[Caller, Depends(caller)]
AgreementId = Annotated[str, Path(min_length=1, max_length=200)]
_PATH_ID_MAX = 200
_PATH_ID: TypeAdapter[str] = TypeAdapter(
    Annotated[str, StringConstraints(min_length=1, max_length=_PATH_ID_MAX)]
)
"""What :data:`AgreementId` checks, for :class:`ExchangeRoute`'s handler."""


class ExchangeRoute(APIRoute):
    """The exchanges route: documented by FastAPI from its endpoint's signature, as any route,
    but each request handled by :meth:`get_route_handler`'s handler, in one worker thread.

    FastAPI's generic handler would run the token's lookup (a blocking dependency) in one worker
    thread and the exchange in another, after solving the endpoint's dependencies one by one;
    on the hot path of the API that costs about as much CPU as deciding the request. This
    handler does the same steps in the same order, with the same errors: the body is read and
    parsed as JSON (malformed JSON: 422), the caller is authenticated (401, 429), the path and
    the body are validated against the same types (422), then the endpoint runs. FastAPI runs no
    dependency for it (declared on the endpoint, the router or the app, or overridden): a check
    this route needs goes in :func:`_exchange_in_thread`.
    """

    def get_route_handler(self) -> Callable[[HttpRequest], Coroutine[Any, Any, Response]]:
        """The handler: the body read here, everything else in one worker thread."""

        async def handle(request: HttpRequest) -> Response:
            return await run_exchange(request, await _json_body(request))

        return handle


async def run_exchange(request: HttpRequest, body: Any) -> Response:
    """The exchange asked for by ``request``, its ``body`` read (:func:`parse_body`): the rest
    in one of the exchange threads, answered 503 past the exchange's time."""
    svc: Services = request.app.state.services
    seconds = svc.exchange_seconds
    # Straight to the executor: anyio's hop (FastAPI's) costs about twice the CPU.
    context = contextvars.copy_context()
    context.run(_DEADLINE.set, time.monotonic() + DOOR_SHARE * seconds)
    loop = asyncio.get_running_loop()
    watched = Running(loop.time() + seconds)
    context.run(_WATCHED.set, watched)
    running: asyncio.Future[Response] = svc.threads.run(
        loop, context.run, _exchange_in_thread, request, body
    )
    watched.future = running
    svc.timeouts.watch(loop, watched)
    try:
        return await running
    except asyncio.CancelledError:
        if not watched.expired:
            raise
        # A store that stalls holds the thread; the partner is answered, and the door will log
        # the failure instead of the release if the store comes back.
        raise ExchangeTimedOut(seconds) from None
    finally:
        svc.timeouts.done(watched)


_MISSING = object()


async def _json_body(request: HttpRequest) -> Any:
    """The request's body as FastAPI reads a JSON body: parsed when the content type is JSON
    (``application/json`` or ``+json``), the raw bytes otherwise, :data:`_MISSING` if empty."""
    try:
        raw = await request.body()
    except Exception as exc:
        raise HTTPException(400, "There was an error parsing the body") from exc
    return parse_body(raw, request.headers.get("content-type", ""))


def parse_body(raw: bytes, content_type: str) -> Any:
    """A request's body ``raw`` as :func:`_json_body` reads it, its type ``content_type``."""
    try:
        if not raw:
            return _MISSING
        media = content_type.partition(";")[0].strip().lower()
        kind, _, subtype = media.partition("/")
        if kind == "application" and (subtype == "json" or subtype.endswith("+json")):
            return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ]
        ) from exc
    except Exception as exc:
        raise HTTPException(400, "There was an error parsing the body") from exc
    return raw


def _exchange_in_thread(request: HttpRequest, body: Any) -> Response:
    """Authenticate, validate, run :func:`exchange`: what FastAPI would, in one thread.

    The store's reads on the way (the token, the registry's revision, the people judged) share
    one connection of its pool (:func:`~accord.store.driver.reads_shared`)."""
    svc = request.app.state.services
    with reads_shared(svc.gateway.accord.engine):
        return _checked_exchange(request, body, svc)


def _checked_exchange(request: HttpRequest, body: Any, svc: Services) -> Response:
    who = caller(request, svc, None)
    errors: list[Any] = []
    params = request.path_params
    for name in ("agreement", "clause"):
        value = params.get(name)
        if type(value) is str and value.isascii() and 0 < len(value) <= _PATH_ID_MAX:
            continue  # what the validator accepts as it is, known without calling it
        try:
            _PATH_ID.validate_python(value)
        except ValidationError as exc:
            errors += [{**e, "loc": ("path", name, *e["loc"])} for e in exc.errors()]
    if body is _MISSING:
        errors.append({"type": "missing", "loc": ("body",), "msg": "Field required", "input": None})
    else:
        try:
            parsed = ExchangeIn.model_validate(body, from_attributes=True)
        except ValidationError as exc:
            errors += [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
    if errors:
        raise RequestValidationError(errors)
    return exchange(params["agreement"], params["clause"], parsed, who, svc)


router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)


def exchange(
    agreement: AgreementId,
    clause: AgreementId,
    body: ExchangeIn,
    who: CallerDep,
    svc: ServicesDep,
) -> Response:
    """Decide the request (agreement, law, consent), move only what is allowed, log, release."""
    request = Request(
        requester=who.app.party,
        agreement=agreement,
        clause=clause,
        operation=Operation(body.operation),
        purpose=body.purpose,
        categories=frozenset(body.categories),
        at=datetime.now(UTC),
        fields=frozenset(body.fields),
        subjects=Subjects(
            SubjectsKind(body.subjects.kind),
            frozenset(body.subjects.people),
            body.subjects.anchor,
        ),
        on_behalf_of=body.on_behalf_of,
        title=body.title,
    )
    request = svc.access.check(who, request)
    release = svc.gateway.exchange(
        Exchange(
            request,
            svc.party_tokens[who.app.party],
            body.collection,
            where=body.where,
            rows=body.rows,
            group_by=tuple(body.group_by),
            measures=body.measures,
            client=who.app.client_id,
            deadline=_DEADLINE.get(),
            epsilon=body.epsilon,
            max_rows=body.max_rows,
        )
    )
    watched = _WATCHED.get()
    if watched is not None and not watched.answer():
        # The caller was answered 503 while the release's entries were being committed: the
        # ledger says the release was never received.
        svc.gateway.note_unreceived(
            request,
            who.app.client_id,
            release,
            "the exchange ran past its time while its entries were committed, and the caller "
            "was answered that nothing was released",
        )
        raise ExchangeTimedOut(svc.exchange_seconds)
    return Response(answer_json(release), media_type="application/json")


_PLAIN = frozenset({str, int, float, bool, type(None)})
"""Values ``jsonable_encoder`` returns as they are, and pydantic writes as ``to_json`` does."""


def answer_json(release: Release) -> bytes:
    """The answer's JSON: the bytes of :class:`ExchangeOut`'s ``model_dump_json`` (serialised
    here, in the worker thread: returned as a response, it skips FastAPI's second validation
    and the thread hop that would take).

    Written by pydantic's own encoder from plain values, without building the models, where the
    rows hold only plain values (as a read's do) and there is no noise; else through the models.
    """
    if release.noise is not None or any(
        type(value) not in _PLAIN for row in release.rows for value in row
    ):
        return _answer_through_models(release)
    d = release.decision
    document = {
        "decision": {"allowed": d.allowed, "reason": d.reason, "rules": list(d.rules)},
        "granularity": release.granularity.value,
        "columns": list(release.columns),
        "rows": [list(r) for r in release.rows],
        "people": release.people,
        "written": release.written,
        "withheld": dict(release.withheld),
        "receipts": [
            {"index": r.index, "leaf_hash": r.leaf_hash.hex(), "tree_size": r.tree_size}
            for r in release.receipts
        ],
        "noise": None,
    }
    # The models' own setting for infinities and NaN (pydantic's default: null).
    return to_json(document, inf_nan_mode="null")


def _answer_through_models(release: Release) -> bytes:
    """The answer's JSON through :class:`ExchangeOut`, its rows through ``jsonable_encoder``."""
    d = release.decision
    out = ExchangeOut(
        decision=DecisionOut(allowed=d.allowed, reason=d.reason, rules=list(d.rules)),
        granularity=release.granularity.value,
        columns=list(release.columns),
        rows=jsonable_encoder([list(r) for r in release.rows]),
        people=release.people,
        written=release.written,
        withheld=dict(release.withheld),
        receipts=[
            ReceiptOut(index=r.index, leaf_hash=r.leaf_hash.hex(), tree_size=r.tree_size)
            for r in release.receipts
        ],
        noise=_noise_out(release.noise),
    )
    return out.model_dump_json().encode()


def _noise_out(noise: Noise | None) -> NoiseOut | None:
    if noise is None:
        return None
    spend = noise.spend
    return NoiseOut(
        epsilon=noise.epsilon,
        delta=noise.delta,
        mechanism=noise.mechanism,
        max_rows=noise.max_rows,
        threshold=noise.threshold,
        description=noise.description,
        spend=ReceiptOut(
            index=spend.index, leaf_hash=spend.leaf_hash.hex(), tree_size=spend.tree_size
        ),
    )


router.add_api_route(
    "/agreements/{agreement}/clauses/{clause}/exchanges",
    exchange,
    methods=["POST"],
    response_model=ExchangeOut,
    summary="Read or write under one clause, through the one door",
    route_class_override=ExchangeRoute,
)


@router.get("/app", response_model=AppOut, summary="The calling app and its permissions")
def app_info(who: CallerDep, svc: ServicesDep) -> AppOut:
    """The app, the scopes its agreement offers, those review approved, and the token's."""
    app = who.app
    return AppOut(
        client_id=app.client_id,
        name=app.name,
        party=app.party,
        agreement=app.agreement,
        offered=[str(s) for s in sorted(svc.apps.offered(app))],
        approved=[str(s) for s in sorted(svc.apps.approved(app.client_id))],
        token_scopes=[str(s) for s in sorted(who.scopes)],
        person=who.person,
    )


def _person(who: Caller, svc: Services) -> str:
    """The token's person, for a person's own permissions (an app's own token: refused, logged)."""
    if who.person is None:
        raise refusal(
            svc.gateway.accord,
            "this is about a person's permissions; use a token the person authorized",
            NO_DELEGATION,
            party=who.app.party,
            client=who.app.client_id,
            outcome="no permission was read or revoked",
        )
    return who.person


@router.get(
    "/me/permissions",
    response_model=list[PermissionOut],
    summary="The permissions the token's person granted this app",
)
def permissions(who: CallerDep, svc: ServicesDep) -> list[PermissionOut]:
    """Every permission the person granted the app, with when it expires or was revoked."""
    person = _person(who, svc)
    now = datetime.now(UTC)
    out = []
    for g in svc.apps.grants(who.app.client_id, person):
        status: Literal["granted", "expired", "revoked"] = (
            "revoked" if g.revoked_at is not None else "granted" if g.live(now) else "expired"
        )
        out.append(
            PermissionOut(
                scope=str(g.scope),
                description=g.scope.describe(),
                granted_at=g.granted_at,
                expires_at=g.expires_at,
                status=status,
            )
        )
    return out


class RevokedOut(BaseModel):
    """How many grants were revoked."""

    revoked: int


@router.delete(
    "/me/permissions/{scope}",
    response_model=RevokedOut,
    summary="Revoke one permission (instant; the person's consent is withdrawn)",
)
def revoke_permission(
    scope: Annotated[str, Path(min_length=1, max_length=300)], who: CallerDep, svc: ServicesDep
) -> RevokedOut:
    """The person takes back one permission; the next request that needs it is refused."""
    person = _person(who, svc)
    return RevokedOut(revoked=svc.apps.revoke(who.app.client_id, person, [Scope.parse(scope)]))


@router.delete(
    "/me/permissions",
    response_model=RevokedOut,
    summary="Revoke every permission: remove the app (instant)",
)
def revoke_all(who: CallerDep, svc: ServicesDep) -> RevokedOut:
    """The person removes the app: every grant is revoked and every consent withdrawn."""
    person = _person(who, svc)
    return RevokedOut(revoked=svc.apps.revoke(who.app.client_id, person))
