"""An advertiser's money beside its data access: what it paid the platform, and what its party
holds through agreements, period by period.

The filings describe a partner that bought ads on the social network while it held private access
to the network's data; nobody had the two side by side. :func:`spend_beside_access` puts them
there, for every advertiser of a platform and every year (or month):

* **the money**, from the spend records (:func:`accord.ads.spend.advertiser_months`): spend,
  impressions, clicks, conversions, and how many days the platform's records hold in the period;
* **the data access** of the advertiser's party (None for an advertiser that is no party), from
  the agreement registry and the ledger: the agreements the party is provider or recipient of and
  their clauses in force on some day of the period (active, reviewed, within their dates); the
  requests decided in the period (the ledger's ``decision`` entries under those agreements or
  made by the party: one per exchange through the gateway, allowed or refused), and what the
  ``release`` entries of the period let through, people and records, to the party and from it.

Periods are read from each entry's own ``at``: an exchange counts in the period in which it was
decided, whatever the ad season around it. The ledger's ``ad_spend`` entries of the platform are
counted and summed too, so a reader can check that the ledger holds every charge.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from accord.ads import tables as t
from accord.ads.model import show_money
from accord.ads.spend import advertiser_months
from accord.agreements import Registered, Status
from accord.errors import InvalidInput, StoreError, translate
from accord.ledger.tables import leaves_table
from accord.store.registry import AgreementRepository

Period = Literal["year", "month"]
PERIODS: tuple[Period, ...] = ("year", "month")

_WANTED = (b'"kind":"decision"', b'"kind":"release"', b'"kind":"ad_spend"')


@dataclass(frozen=True, slots=True)
class Access:
    """What a party's agreements let it do in one period, as the registry and the ledger hold it.

    ``people`` is summed over releases (one person in two releases counts twice; the ledger names
    people only by pseudonyms that differ from leaf to leaf). ``received`` are the records released
    to the party, ``given`` those released from it (rows read: the ledger counts a write's
    people, not its rows).
    """

    party: str
    agreements: tuple[str, ...] = ()
    """The party's agreements in force on some day of the period."""
    clauses: int = 0
    """Their clauses."""
    allowed: int = 0
    refused: int = 0
    people: int = 0
    received: int = 0
    given: int = 0
    writes: int = 0
    """Releases that were writes (rows the party wrote into the other's data, or the other
    into its own)."""
    releases: int = 0

    @property
    def records(self) -> int:
        """Records released to or from the party (rows read)."""
        return self.received + self.given

    def to_json(self) -> dict[str, Any]:
        """A JSON object."""
        return {
            "party": self.party,
            "agreements_in_force": list(self.agreements),
            "clauses_in_force": self.clauses,
            "exchanges_allowed": self.allowed,
            "exchanges_refused": self.refused,
            "releases": self.releases,
            "people_let_through": self.people,
            "records_released": self.records,
            "records_received": self.received,
            "records_given": self.given,
            "writes": self.writes,
        }


@dataclass(frozen=True, slots=True)
class AdvertiserPeriod:
    """One advertiser's period: its money, and its party's data access (None: no party)."""

    advertiser: str
    name: str
    period: str
    days: int
    """Days of the period the platform's spend records hold (every day of a full season; the
    sampled days of a sample)."""
    spend: int
    impressions: int
    clicks: int
    conversions: int
    partner_data: bool
    access: Access | None

    def to_json(self) -> dict[str, Any]:
        """A JSON object (amounts in micros and as currency text; ``access`` null for an
        advertiser that is no party to any agreement)."""
        return {
            "advertiser": self.advertiser,
            "name": self.name,
            "period": self.period,
            "days": self.days,
            "spend_micros": self.spend,
            "spend": show_money(self.spend),
            "impressions": self.impressions,
            "clicks": self.clicks,
            "conversions": self.conversions,
            "partner_data": self.partner_data,
            "access": None if self.access is None else self.access.to_json(),
        }


@dataclass(frozen=True, slots=True)
class SpendBesideAccess:
    """Every advertiser's periods, largest spender first, and the platform's ``ad_spend``
    entries in the ledger."""

    platform: str
    by: Period
    rows: tuple[AdvertiserPeriod, ...]
    spend_entries: int = 0
    """The platform's ``ad_spend`` entries in the ledger (one per campaign and day)."""
    spend_in_ledger: int = 0
    """Micros those entries add up to."""
    days: dict[str, int] = field(default_factory=dict)
    """Days with spend records, by period."""

    @property
    def spend(self) -> int:
        """Micros in the spend records, every advertiser and period."""
        return sum(r.spend for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        """A JSON object."""
        return {
            "platform": self.platform,
            "by": self.by,
            "spend_micros": self.spend,
            "ledger": {
                "ad_spend_entries": self.spend_entries,
                "ad_spend_micros": self.spend_in_ledger,
            },
            "rows": [r.to_json() for r in self.rows],
        }


def period_of(day: date | datetime, by: Period) -> str:
    """The period a day falls in: ``YYYY`` or ``YYYY-MM``."""
    return f"{day.year:04d}" if by == "year" else f"{day.year:04d}-{day.month:02d}"


def period_days(period: str) -> tuple[date, date]:
    """The first day of a period (``YYYY`` or ``YYYY-MM``) and the first day after it."""
    try:
        if len(period) == 4:
            first = date(int(period), 1, 1)
            return first, date(first.year + 1, 1, 1)
        first = date.fromisoformat(f"{period}-01")
    except ValueError:
        raise InvalidInput(f"{period!r} is not a period: write it YYYY or YYYY-MM") from None
    return first, date(first.year + first.month // 12, first.month % 12 + 1, 1)


def in_force_during(registered: Registered, first: date, after: date) -> bool:
    """Whether an agreement is in force on some day from ``first`` up to ``after``: active (as
    the registry holds it now), reviewed and approved for its version, and within its dates."""
    a = registered.agreement
    review = registered.review
    return (
        registered.status is Status.ACTIVE
        and review is not None
        and review.approved
        and review.version == a.version
        and a.valid_from < after
        and first < a.valid_until
    )


def spend_beside_access(engine: Engine, platform: str, *, by: Period = "year") -> SpendBesideAccess:
    """Per advertiser of ``platform`` and period (``by`` year or month): its spend, impressions,
    clicks and conversions, beside the data access its party holds through agreements in the
    same period. Rows come largest spender first, each advertiser's periods in order."""
    if by not in PERIODS:
        raise InvalidInput(f"periods are {' or '.join(PERIODS)}, not {by!r}")
    months = advertiser_months(engine, platform)
    a, d = t.advertisers.c, t.spend_days.c
    reading = translate(StoreError, "reading the platform's advertisers and days")
    with reading, engine.connect() as c:
        parties = {
            row.id: row.party
            for row in c.execute(select(a.id, a.party).where(a.platform == platform))
        }
        closed = (
            c.execute(
                select(d.day)
                .join(t.advertisers, a.id == d.advertiser)
                .where(a.platform == platform)
                .group_by(d.day)
            )
            .scalars()
            .all()
        )
    days: dict[str, int] = defaultdict(int)
    for day in closed:
        days[period_of(_day(day), by)] += 1
    with translate(StoreError, "reading the agreement registry"), Session(engine) as s:
        registry = AgreementRepository(s).list()
    ledger = _read_ledger(engine, platform, by)
    money: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    names: dict[str, str] = {}
    for m in months:
        names[m.advertiser] = m.name
        sums = money[(m.advertiser, period_of(date.fromisoformat(f"{m.month}-01"), by))]
        sums[0] += m.spend
        sums[1] += m.impressions
        sums[2] += m.clicks
        sums[3] += m.conversions
        sums[4] |= m.partner_data
    total: dict[str, int] = defaultdict(int)
    for (advertiser, _), sums in money.items():
        total[advertiser] += sums[0]
    rows = []
    for advertiser, period in sorted(money, key=lambda k: (-total[k[0]], k[0], k[1])):
        sums = money[(advertiser, period)]
        party = parties.get(advertiser)
        access = None if party is None else _access(party, period, registry, ledger)
        rows.append(
            AdvertiserPeriod(
                advertiser,
                names[advertiser],
                period,
                days.get(period, 0),
                spend=sums[0],
                impressions=sums[1],
                clicks=sums[2],
                conversions=sums[3],
                partner_data=bool(sums[4]),
                access=access,
            )
        )
    return SpendBesideAccess(
        platform,
        by,
        tuple(rows),
        spend_entries=ledger.spend_entries,
        spend_in_ledger=ledger.spend_micros,
        days=dict(days),
    )


@dataclass
class _Ledger:
    """The ledger's decisions and releases counted by what the access table needs, and the
    platform's ad_spend entries."""

    decisions: dict[tuple[str, str | None, str | None, bool], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """Decisions by (period, agreement, requester, allowed)."""
    releases: dict[tuple[str, str | None, str | None, str | None, bool], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0])
    )
    """Releases by (period, agreement, provider, recipient, a write): count, people, rows."""
    spend_entries: int = 0
    spend_micros: int = 0


def _read_ledger(engine: Engine, platform: str, by: Period) -> _Ledger:
    """The ledger's decision and release entries, counted by period, agreement and parties, and
    the platform's ad_spend entries, read leaf by leaf: a leaf's bytes are looked at first and
    only the kinds wanted are decoded."""
    out = _Ledger()
    leaves = leaves_table.c
    with translate(StoreError, "reading the ledger's leaves"), engine.connect() as conn:
        for idx, data in conn.execute(select(leaves.idx, leaves.data).order_by(leaves.idx)):
            raw = bytes(data)
            if not any(kind in raw for kind in _WANTED):
                continue
            try:
                entry = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidInput(f"leaf {idx} of the ledger is not JSON: {exc}") from exc
            kind = entry.get("kind")
            if kind == "ad_spend":
                if entry.get("platform") == platform:
                    out.spend_entries += 1
                    out.spend_micros += int(entry.get("amount_micros") or 0)
                continue
            if kind not in ("decision", "release"):
                continue
            period = period_of(_instant(entry.get("at"), idx), by)
            agreement = entry.get("agreement")
            if kind == "decision":
                key = (period, agreement, entry.get("recipient"), bool(entry.get("allowed")))
                out.decisions[key] += 1
                continue
            write = entry.get("operation") == "write"
            sums = out.releases[
                (period, agreement, entry.get("provider"), entry.get("recipient"), write)
            ]
            sums[0] += 1
            sums[1] += int(entry.get("people") or 0)
            sums[2] += int(entry.get("rows") or 0)
    return out


def _access(party: str, period: str, registry: list[Registered], ledger: _Ledger) -> Access:
    first, after = period_days(period)
    mine = {r.agreement.id: r for r in registry if party in _parties(r)}
    in_force = sorted(a for a, r in mine.items() if in_force_during(r, first, after))
    allowed = refused = 0
    for (when, agreement, requester, ok), n in ledger.decisions.items():
        # A request under one of the party's agreements (whoever asked), or one it made itself
        # (under an agreement it holds or not).
        if when == period and (agreement in mine or requester == party):
            if ok:
                allowed += n
            else:
                refused += n
    people = received = given = writes = releases = 0
    for (when, _, provider, recipient, write), (n, who, rows) in ledger.releases.items():
        if when != period or party not in (provider, recipient):
            continue
        releases += n
        people += who
        if write:
            writes += n
        elif recipient == party:
            received += rows
        else:
            given += rows
    return Access(
        party,
        tuple(in_force),
        sum(len(mine[a].agreement.clauses) for a in in_force),
        allowed=allowed,
        refused=refused,
        people=people,
        received=received,
        given=given,
        writes=writes,
        releases=releases,
    )


def _parties(registered: Registered) -> tuple[str, str]:
    return registered.agreement.provider, registered.agreement.recipient


def _instant(text: object, idx: int) -> datetime:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"leaf {idx} of the ledger has no instant: {text!r}") from None


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


__all__ = [
    "PERIODS",
    "Access",
    "AdvertiserPeriod",
    "Period",
    "SpendBesideAccess",
    "in_force_during",
    "period_days",
    "period_of",
    "spend_beside_access",
]
