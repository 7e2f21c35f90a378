"""Ad requests: ``POST /v1/ads/request`` answers the winning ads for a person, with their prices.

Who may call it: the platform's own ad service, with its app's own token (client credentials)
of an app whose party is the platform named in the body (``party``: ``chirp``). The ads a
platform's people see are the platform's to choose, from its own records: a partner's app is
refused (it would learn which advertisers, and so which targeting, reach a person), and so is a
person's token (the partner app acting for one person under a grant of data access, which gives
no power over the platform's ads). Each refusal is logged to the ledger, as the API's other
refusals are.

The person's sale/sharing opt-out counts wherever it is recorded, and a ``Sec-GPC: 1`` signal
counts at once: the platform's front end passes it in ``context.gpc`` (or sends the header on
this call). Either way no ad targeted with partner data reaches them.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Security
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import Response

from accord.ads.market import Placement
from accord.ads.model import Campaign, Creative, show_money
from accord.ads.serving import AdServer
from accord.ads.store import AdsStore
from accord.api.access import NO_DELEGATION, Access, Caller, refusal
from accord.api.problems import PROBLEM_RESPONSES
from accord.api.routes import _MISSING, BEARER, CallerDep, Services, _json_body, caller
from accord.errors import AccordError
from accord.service import Accord
from accord.store.writer import WriterClient

router = APIRouter(prefix="/v1/ads", responses=PROBLEM_RESPONSES, tags=["ads"])

FIRST_PARTY = "api:ads-first-party"
"""The rule refusing an ad request from anyone but the platform itself."""

Key = Annotated[str, Field(min_length=1, max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdContext(_In):
    """Where and when the ads are shown."""

    surface: Literal["feed", "stories", "search"] = Field(
        default="feed", description="The surface the slots are on."
    )
    gpc: bool = Field(
        default=False,
        description="The person's browser or app sent a Global Privacy Control signal "
        "(Sec-GPC: 1): an opt-out of sale and sharing, honoured at once.",
    )
    at: datetime | None = Field(
        default=None, description="When the ads are shown (RFC 3339); by default, now."
    )


class AdRequestIn(_In):
    """An ad request for one person of the platform."""

    person: Key = Field(description="The person, by the platform's own id for them.")
    party: Key = Field(description="The platform whose people see the ads (e.g. chirp).")
    slots: int = Field(default=2, ge=1, le=10, description="How many ad slots to fill.")
    context: AdContext = Field(default_factory=AdContext)


class CreativeOut(BaseModel):
    """What the person sees."""

    id: str
    headline: str
    body: str
    url: str


class AdOut(BaseModel):
    """One slot's winning ad and what it costs the advertiser."""

    slot: int = Field(description="0 is the first slot.")
    campaign: int
    advertiser: str
    creative: CreativeOut
    billing: Literal["cpc", "cpm"] = Field(
        description="cpc: the price is charged if the ad is clicked; cpm: for the impression."
    )
    price_micros: int = Field(
        description="Price per click (cpc) or per impression (cpm), in micro-units of currency."
    )
    price: str = Field(description="The price in currency units, to the cent.")


class AdResponseOut(BaseModel):
    """The ads that won, in slot order (fewer than asked if fewer campaigns were eligible)."""

    request_id: str | None
    ads: list[AdOut]


class _Asked:
    """One ad request waiting for its group: the token it came with, what it asks, and then
    the caller the token named (set by the group, for the access log)."""

    __slots__ = ("authorization", "body", "client_id", "gpc")

    def __init__(self, authorization: str | None, body: AdRequestIn, gpc: bool) -> None:
        self.authorization, self.body, self.gpc = authorization, body, gpc
        self.client_id: str | None = None


_Answer = asyncio.Future[list[Placement] | AccordError]


class AdServers:
    """One :class:`AdServer` per platform, made at its first request."""

    def __init__(self, accord: Accord, writer: WriterClient | None = None) -> None:
        self.accord = accord
        self.writer = writer
        """The server's shared writer, which records impressions if there is one."""
        self._servers: dict[str, AdServer] = {}
        self._lock = threading.Lock()
        # Requests waiting, per platform, and the platforms whose group is being served.
        self._waiting: dict[str, list[tuple[_Asked, _Answer]]] = {}
        self._serving: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, platform: str) -> AdServer:
        """The platform's server."""
        with self._lock:
            server = self._servers.get(platform)
            if server is None:
                server = AdServer(AdsStore(self.accord.engine, platform, writer=self.writer))
                self._servers[platform] = server
            return server

    async def ask(self, access: Access, asked: _Asked) -> list[Placement]:
        """The ads for one request. Requests that come in while a group of the platform's is
        being served wait for the next group; each group is served in one call of a worker
        thread (:meth:`_serve_group`: each request's token checked, then
        :meth:`AdServer.serve_many`: one read of the people's signals, one transaction for the
        impressions and charges), then each request gets its own answer."""
        platform = asked.body.party
        loop = asyncio.get_running_loop()
        answer: _Answer = loop.create_future()
        self._waiting.setdefault(platform, []).append((asked, answer))
        if platform not in self._serving:
            self._serving.add(platform)
            self._tasks.add(task := loop.create_task(self._serve(access, platform)))
            task.add_done_callback(self._tasks.discard)
        found = await answer
        if isinstance(found, AccordError):
            raise found
        return found

    async def _serve(self, access: Access, platform: str) -> None:
        """Serve the platform's waiting requests, group after group, until none is left."""
        loop = asyncio.get_running_loop()
        try:
            while group := self._waiting.pop(platform, []):
                try:
                    # Straight to the loop's executor: one hop a group (anyio's costs more).
                    found = await loop.run_in_executor(
                        None, self._serve_group, access, platform, [a for a, _ in group]
                    )
                except Exception as exc:  # noqa: BLE001 - every request of the group gets it
                    for _asked, answer in group:
                        if not answer.done():  # its caller may have gone (cancelled)
                            answer.set_exception(exc)
                    continue
                for (_asked, answer), result in zip(group, found, strict=True):
                    if not answer.done():
                        answer.set_result(result)
        finally:
            self._serving.discard(platform)

    def _serve_group(
        self, access: Access, platform: str, group: list[_Asked]
    ) -> list[list[Placement] | AccordError]:
        """In a worker thread: each request's caller authenticated (401, 429) and checked to be
        the platform's own service (403, logged), in the order they came; then the requests that
        passed served as one group."""
        out: list[list[Placement] | AccordError] = []
        served: list[int] = []
        for k, asked in enumerate(group):
            try:
                who = access.caller(asked.authorization)
                asked.client_id = who.app.client_id
                _check_first_party(
                    self.accord, who, platform, f"ads for {platform}'s people are asked for"
                )
            except AccordError as exc:
                out.append(exc)
                continue
            out.append([])
            served.append(k)
        if served:
            found = self.get(platform).serve_many(
                [
                    (b.person, b.slots, b.context.at, group[k].gpc)
                    for k in served
                    for b in (group[k].body,)
                ]
            )
            for k, result in zip(served, found, strict=True):
                out[k] = result
        return out


class AdRequestRoute(APIRoute):
    """``POST /v1/ads/request``: documented by FastAPI from its endpoint's signature, as any
    route, and each request handled by :meth:`get_route_handler`'s handler, which calls that
    same endpoint (:func:`request_ads`).

    FastAPI's generic handler would look the token up in a worker thread of its own for each
    request (a blocking dependency), validate the answer's model a second time and encode it.
    This handler does the same steps with the same errors: the body is read and parsed as JSON
    (malformed JSON: 422), the caller authenticated (401, 429) before the body is validated
    (422), the caller checked to be the platform's own service (403); but the token is looked
    up in the thread that serves the request's group, one thread hop for the group, and the
    answer is encoded once. FastAPI runs no dependency for it: the endpoint gets the token as
    it was sent, and its group checks it.
    """

    def get_route_handler(self) -> Callable[[HttpRequest], Coroutine[Any, Any, Response]]:
        """The handler: the body read, then :func:`run_ad_request`."""

        async def handle(request: HttpRequest) -> Response:
            return await run_ad_request(request, await _json_body(request))

        return handle


async def run_ad_request(request: HttpRequest, body: Any) -> Response:
    """The ad request ``request``, its ``body`` read (:func:`accord.api.routes.parse_body`):
    validated, then answered by the route's endpoint (:func:`request_ads`)."""
    try:
        parsed = _parsed(body)
    except RequestValidationError:
        # Authentication comes first: without a usable token it is 401, whatever the body.
        await run_in_threadpool(caller, request, request.app.state.services, None)
        raise
    return await request_ads(
        parsed,
        request.headers.get("authorization"),
        request,
        request.headers.get("sec-gpc"),
    )


def _parsed(body: Any) -> AdRequestIn:
    """The request's body validated as FastAPI validates it (422, saying where)."""
    if body is _MISSING:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        return AdRequestIn.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None


def _answer(placed: list[Placement]) -> bytes:
    """:class:`AdResponseOut` as FastAPI encodes it (compact JSON, UTF-8), from the placements
    straight (no model built to be validated and dumped): what each ad's campaign and creative
    say, the same at every request, encoded once (:func:`_shown`)."""
    if not placed:
        return _NO_ADS
    ads = ",".join(
        [
            f'{{"slot":{p.slot},{_shown(p)},"price_micros":{p.price},'
            f'"price":"{show_money(p.price)}"}}'
            for p in placed
        ]
    )
    return f'{{"request_id":{_json(placed[0].request_id)},"ads":[{ads}]}}'.encode()


_NO_ADS = b'{"request_id":null,"ads":[]}'
_SHOWN_LIMIT = 65_536
_shown_of: dict[int, tuple[Campaign, Creative, str]] = {}
"""By the creative's ``id()``: the campaign, the creative (kept, so that the id is not another
object's), and what the answer says of them."""


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _shown(p: Placement) -> str:
    """The answer's members of an ad that say what it is: its campaign, advertiser, creative
    and billing (compact JSON, in :class:`AdOut`'s order)."""
    found = _shown_of.get(id(p.creative))
    if found is not None and found[0] is p.campaign and found[1] is p.creative:
        return found[2]
    c, creative = p.campaign, p.creative
    text = (
        f'"campaign":{_json(c.id)},"advertiser":{_json(c.advertiser)},'
        f'"creative":{{"id":{_json(creative.id)},"headline":{_json(creative.headline)},'
        f'"body":{_json(creative.body)},"url":{_json(creative.url)}}},'
        f'"billing":{_json(p.billing.value)}'
    )
    if len(_shown_of) >= _SHOWN_LIMIT:
        _shown_of.clear()
    _shown_of[id(creative)] = (c, creative, text)
    return text


def _authorization(
    request: HttpRequest,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> str | None:
    """The ``Authorization`` header as sent: checked with the request's group, in the group's
    worker thread (documented as the API's bearer token, as every route's caller is)."""
    return request.headers.get("authorization")


async def request_ads(
    body: AdRequestIn,
    authorization: Annotated[str | None, Depends(_authorization)],
    request: HttpRequest,
    sec_gpc: Annotated[str | None, Header(alias="Sec-GPC")] = None,
) -> Response:
    """Run the auction for ``slots`` slots shown to ``person``: eligibility (targeting, schedule,
    budgets, frequency caps, opt-outs), pacing, generalised second price; CPM winners are
    charged and every impression recorded before the answer."""
    svc: Services = request.app.state.services
    servers: AdServers = request.app.state.ads
    gpc = body.context.gpc or (sec_gpc or "").strip() == "1"
    asked = _Asked(authorization, body, gpc)
    try:
        placed = await servers.ask(svc.access, asked)
    finally:
        if asked.client_id is not None:
            request.state.client_id = asked.client_id
    return Response(_answer(placed), media_type="application/json")


router.add_api_route(
    "/request",
    request_ads,
    methods=["POST"],
    response_model=AdResponseOut,
    summary="The winning ads for one of the platform's people, with their prices",
    route_class_override=AdRequestRoute,
)


class ClickIn(_In):
    """A click on an ad an ad request showed, reported by the platform's own service."""

    party: Key = Field(description="The platform that showed the ad (e.g. chirp).")
    request_id: Annotated[str, Field(min_length=1, max_length=32)] = Field(
        description="The ad request's id, as its answer gave it."
    )
    slot: int = Field(ge=0, le=9, description="The slot of the ad clicked (0 is the first).")
    at: datetime | None = Field(
        default=None, description="When the person clicked (RFC 3339); by default, now."
    )


class ClickOut(BaseModel):
    """The click as recorded."""

    request_id: str
    slot: int
    campaign: int
    billing: Literal["cpc", "cpm"]
    counted: bool = Field(
        description="True for the first click on this ad; a repeated click is not counted again."
    )
    charged_micros: int = Field(
        description="What the click cost the advertiser (a CPC ad's price, at most what its "
        "budgets had left; 0 for a CPM ad or a repeated click)."
    )
    charged: str = Field(description="The same in currency units, to the cent.")


@router.post(
    "/click",
    response_model=ClickOut,
    summary="Record a click on an ad an ad request showed, and charge a CPC advertiser once",
)
async def click_ad(body: ClickIn, who: CallerDep, request: HttpRequest) -> ClickOut:
    """Count a person's click on the ad in ``slot`` of ad request ``request_id``: the first
    click on it is counted and, for a CPC ad, charged at the auction's price (at most what the
    campaign's budgets have left); a repeated click is answered as already counted and charged
    nothing. A click on an ad no request showed is 404; one before the ad was shown, or more
    than 7 days after, is 422."""
    servers: AdServers = request.app.state.ads
    await _first_party_only(
        servers.accord, who, body.party, f"clicks on {body.party}'s ads are reported"
    )
    server = await run_in_threadpool(servers.get, body.party)
    click = await run_in_threadpool(server.click, body.request_id, body.slot, body.at)
    return ClickOut(
        request_id=click.request_id,
        slot=click.slot,
        campaign=click.campaign,
        billing="cpc" if click.billing == "cpc" else "cpm",
        counted=click.counted,
        charged_micros=click.charged,
        charged=show_money(click.charged),
    )


async def _first_party_only(accord: Accord, who: Caller, party: str, what: str) -> None:
    """Refuse (403, logged) unless the caller is ``party``'s own service with its app's own
    token: ``what`` ("ads for chirp's people are asked for") is said to be done that way."""
    if _not_first_party(who, party, what) is not None:
        await run_in_threadpool(_check_first_party, accord, who, party, what)


def _check_first_party(accord: Accord, who: Caller, party: str, what: str) -> None:
    """:func:`_first_party_only` in a worker thread: the refusal logged to the ledger, then
    raised (403)."""
    refused = _not_first_party(who, party, what)
    if refused is not None:
        message, rule = refused
        raise refusal(
            accord,
            message,
            rule,
            party=who.app.party,
            client=who.app.client_id,
            purpose="marketing.advertising",
            outcome="no ad was chosen",
        )


def _not_first_party(who: Caller, party: str, what: str) -> tuple[str, str] | None:
    """Why the caller may not do ``what`` for ``party`` (the message and the rule), or None."""
    if who.person is not None:
        message = (
            f"{what} by the platform's own service with its app's own token "
            "(client credentials), not with a person's"
        )
        return message, NO_DELEGATION
    if who.app.party != party:
        return (f"{what} by {party}'s own service, not by an app of {who.app.party}", FIRST_PARTY)
    return None
