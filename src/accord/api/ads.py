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
import threading
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest

from accord.ads.market import Placement
from accord.ads.model import show_money
from accord.ads.serving import AdServer
from accord.ads.store import AdsStore
from accord.api.access import NO_DELEGATION, Caller, refusal
from accord.api.problems import PROBLEM_RESPONSES
from accord.api.routes import CallerDep
from accord.errors import AccordError
from accord.service import Accord

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


class AdServers:
    """One :class:`AdServer` per platform, made at its first request."""

    def __init__(self, accord: Accord) -> None:
        self.accord = accord
        self._servers: dict[str, AdServer] = {}
        self._lock = threading.Lock()
        # Requests waiting, per platform, and the platforms whose group is being served.
        self._waiting: dict[
            str,
            list[
                tuple[
                    tuple[str, int, datetime | None, bool],
                    asyncio.Future[list[Placement] | AccordError],
                ]
            ],
        ] = {}
        self._serving: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, platform: str) -> AdServer:
        """The platform's server."""
        with self._lock:
            server = self._servers.get(platform)
            if server is None:
                server = AdServer(AdsStore(self.accord.engine, platform))
                self._servers[platform] = server
            return server

    async def ask(
        self, platform: str, person: str, slots: int, at: datetime | None, *, gpc: bool
    ) -> list[Placement]:
        """The ads for one request. Requests that come in while a group of the platform's is
        being served wait for the next group; each group is served in one call of a worker
        thread (:meth:`AdServer.serve_many`: one read of the people's signals, one transaction
        for the impressions and charges), then each request gets its own answer."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Placement] | AccordError] = loop.create_future()
        self._waiting.setdefault(platform, []).append(((person, slots, at, gpc), answer))
        if platform not in self._serving:
            self._serving.add(platform)
            self._tasks.add(task := loop.create_task(self._serve(platform)))
            task.add_done_callback(self._tasks.discard)
        found = await answer
        if isinstance(found, AccordError):
            raise found
        return found

    async def _serve(self, platform: str) -> None:
        """Serve the platform's waiting requests, group after group, until none is left."""
        try:
            while group := self._waiting.pop(platform, []):
                try:
                    server = await run_in_threadpool(self.get, platform)
                    found = await run_in_threadpool(server.serve_many, [a for a, _ in group])
                except Exception as exc:  # noqa: BLE001 - every request of the group gets it
                    for _ask, answer in group:
                        if not answer.done():  # its caller may have gone (cancelled)
                            answer.set_exception(exc)
                    continue
                for (_ask, answer), result in zip(group, found, strict=True):
                    if not answer.done():
                        answer.set_result(result)
        finally:
            self._serving.discard(platform)


@router.post(
    "/request",
    response_model=AdResponseOut,
    summary="The winning ads for one of the platform's people, with their prices",
)
async def request_ads(
    body: AdRequestIn,
    who: CallerDep,
    request: HttpRequest,
    sec_gpc: Annotated[str | None, Header(alias="Sec-GPC")] = None,
) -> AdResponseOut:
    """Run the auction for ``slots`` slots shown to ``person``: eligibility (targeting, schedule,
    budgets, frequency caps, opt-outs), pacing, generalised second price; CPM winners are
    charged and every impression recorded before the answer."""
    servers: AdServers = request.app.state.ads
    await _first_party_only(
        servers.accord, who, body.party, f"ads for {body.party}'s people are asked for"
    )
    gpc = body.context.gpc or (sec_gpc or "").strip() == "1"
    placed = await servers.ask(body.party, body.person, body.slots, body.context.at, gpc=gpc)
    return AdResponseOut(
        request_id=placed[0].request_id if placed else None,
        ads=[
            AdOut(
                slot=p.slot,
                campaign=p.campaign.id,
                advertiser=p.campaign.advertiser,
                creative=CreativeOut(
                    id=p.creative.id,
                    headline=p.creative.headline,
                    body=p.creative.body,
                    url=p.creative.url,
                ),
                billing=p.billing.value,
                price_micros=p.price,
                price=show_money(p.price),
            )
            for p in placed
        ],
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
    if who.person is not None:
        await _refuse(
            accord,
            who,
            f"{what} by the platform's own service with its app's own token "
            "(client credentials), not with a person's",
            NO_DELEGATION,
        )
    if who.app.party != party:
        await _refuse(
            accord,
            who,
            f"{what} by {party}'s own service, not by an app of {who.app.party}",
            FIRST_PARTY,
        )


async def _refuse(accord: Accord, who: Caller, message: str, rule: str) -> None:
    """Log the refusal to the ledger, then raise it (403)."""
    raise await run_in_threadpool(
        lambda: refusal(
            accord,
            message,
            rule,
            party=who.app.party,
            client=who.app.client_id,
            purpose="marketing.advertising",
            outcome="no ad was chosen",
        )
    )
