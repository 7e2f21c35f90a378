"""The ad platform's records in the Accord store: accounts, audiences, campaigns, profiles, and
the rows an ad request leaves (impressions and charges).

Large writes (a simulated season's impressions and charges) go through the driver's own
``executemany`` with values already in each backend's stored form (:func:`insert_rows`), as the
ledger's appends do: SQLAlchemy's per-row handling would cost more than the inserts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, Table, select, text, update

from accord.ads import tables as t
from accord.ads.market import Charge
from accord.ads.model import (
    Advertiser,
    Audience,
    Bid,
    BidStrategy,
    Campaign,
    CampaignStatus,
    Creative,
    PersonSignals,
    Schedule,
    Targeting,
)
from accord.consent import OptOutKind
from accord.errors import InvalidInput, NotFound, StoreError, translate
from accord.store import tables as store_tables
from accord.store.engine import write_turn
from accord.store.types import to_text
from accord.store.writer import WriterClient


def _now() -> datetime:
    return datetime.now(UTC)


def _texts(values: Iterable[str]) -> str:
    return json.dumps(sorted(values))


def _sqlite_form(sample: object) -> Callable[[Any], object]:
    """How SQLite stores the values of a column whose first value is ``sample`` (an instant, a
    day or a flag): what the columns' types would bind (:func:`accord.store.types.to_text` for
    an instant, ISO 8601 for a day, 0 or 1), without their per-value work."""
    if isinstance(sample, datetime):
        return _instant_text
    if isinstance(sample, date):
        return date.isoformat
    return int


def _instant_text(moment: datetime) -> str:
    # An instant already in UTC (the common case) is written as to_text writes it without the
    # conversions on the way.
    if moment.tzinfo is UTC:
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    return to_text(moment)


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> int:
    """Insert ``rows`` (values in ``columns`` order) with the driver's ``executemany``."""
    if not rows:
        return 0
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - our own table
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    converting = [
        n for n, row_value in enumerate(rows[0]) if isinstance(row_value, (datetime, date, bool))
    ]
    if sqlite and converting:
        # Column by column: only the columns to convert are touched, value by value; the rows
        # are taken apart and put together again by zip (in C).
        by_column: list[Sequence[object]] = list(zip(*rows, strict=True))
        for n in converting:
            convert = _sqlite_form(rows[0][n])
            if convert is int:
                continue  # sqlite3 binds a flag as the integer it is (0 or 1)
            column = by_column[n]
            distinct = set(column)
            if 2 * len(distinct) > len(column):
                by_column[n] = [None if v is None else convert(v) for v in column]
                continue
            # Each distinct value converted once (a group's rows share their instant and day).
            forms = {v: convert(v) for v in distinct if v is not None}
            by_column[n] = [forms.get(v) for v in column]
        rows = list(zip(*by_column, strict=True))
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()
    return len(rows)


IMPRESSION_COLUMNS = (
    "request_id",
    "platform",
    "person",
    "campaign_id",
    "advertiser",
    "creative_id",
    "slot",
    "at",
    "day",
    "billing",
    "price_micros",
    "predicted_ctr",
    "p_click",
    "clicked",
    "p_conversion",
    "converted",
)
SPEND_COLUMNS = ("campaign_id", "advertiser", "at", "day", "event", "amount_micros", "request_id")


def charge_rows(charges: Iterable[Charge]) -> list[tuple[object, ...]]:
    """Spend rows (:data:`SPEND_COLUMNS`) of charges."""
    return [
        (c.campaign, c.advertiser, c.at, c.at.date(), c.event, c.micros, c.request_id)
        for c in charges
    ]


_SIGNALS_CACHE = 65_536
"""People whose signals, as last read, are kept (with what they were built from): the memory is
emptied when it holds this many."""


_PEOPLE, _PROFILES, _MEMBERS, _AUDIENCES, _OPTOUTS, _REVISIONS = (
    store_tables.people.name,
    t.profiles.name,
    t.audience_members.name,
    t.audiences.name,
    store_tables.opt_outs.name,
    t.campaign_revisions.name,
)
_SALE_SHARING = OptOutKind.SALE_SHARING.value


def _signals_sql(dialect: str, people: int) -> str:
    """The one statement :meth:`AdsStore.signals_many` runs for ``people`` people, in the
    driver's own terms (its placeholders), rows tagged by what they hold:

    * ``0``: a person, where they live, their ad profile (age band, interests) if any;
    * ``1``: a person's membership of an audience, the audience's provider and the person's id
      there;
    * ``2``: a sale/sharing opt-out recorded by the platform for one of the people, or by an
      audience's provider for the id it knows one of them by (controller, person, since,
      until; found by the opt-outs' index on controller and person), its instants as the store
      writes them on SQLite (:func:`accord.store.types.to_text`, which sorts as the instants
      do) on either backend. A provider's opt-out may come once for each of its audiences the
      person is in;
    * ``3``: the platform's campaigns revision (:meth:`AdsStore.campaigns_revision`), as text;
      no row if its campaigns were never written.

    Parameters: the platform, the people; the people; the platform, the people, the opt-outs'
    kind and the latest instant asked about (in its stored form); the people, the kind and the
    instant again; the platform."""
    mark = "?" if dialect == "sqlite" else "%s"
    marks = ", ".join([mark] * people)
    if dialect == "postgresql":
        since = "to_char(o.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        until = since.replace("o.at", "o.revoked_at")
    else:
        since, until = "o.at", "o.revoked_at"
    return (
        "SELECT 0, p.person_id, p.jurisdiction, pr.age_band, pr.interests "  # noqa: S608 - ours
        f"FROM {_PEOPLE} AS p LEFT OUTER JOIN {_PROFILES} AS pr "
        "ON pr.platform = p.party AND pr.person = p.person_id "
        f"WHERE p.party = {mark} AND p.person_id IN ({marks}) "
        "UNION ALL "
        "SELECT 1, m.person, m.audience_id, au.provider, m.source_person "
        f"FROM {_MEMBERS} AS m JOIN {_AUDIENCES} AS au ON au.id = m.audience_id "
        f"WHERE m.person IN ({marks}) "
        "UNION ALL "
        f"SELECT 2, o.controller, o.person, {since}, {until} FROM {_OPTOUTS} AS o "
        f"WHERE o.controller = {mark} AND o.person IN ({marks}) AND o.kind = {mark} "
        f"AND o.at <= {mark} "
        "UNION ALL "
        f"SELECT 2, o.controller, o.person, {since}, {until} "
        f"FROM {_MEMBERS} AS ms JOIN {_AUDIENCES} AS aus ON aus.id = ms.audience_id "
        f"JOIN {_OPTOUTS} AS o ON o.controller = aus.provider AND o.person = ms.source_person "
        f"WHERE ms.person IN ({marks}) AND o.kind = {mark} AND o.at <= {mark} "
        "UNION ALL "
        f"SELECT 3, r.platform, CAST(r.revision AS TEXT), NULL, NULL FROM {_REVISIONS} AS r "
        f"WHERE r.platform = {mark}"
    )


RECORD_JOB = "ads.record"
"""The shared writer's job (:mod:`accord.store.writer`) that records ad requests' impressions and
charges: :func:`record_many`."""


def record_many(engine: Engine) -> Callable[[list[Any]], list[Any]]:
    """The shared writer's job recording, on ``engine``, the impressions and charges that other
    processes' ad servers send it (each a pair: impression rows in :data:`IMPRESSION_COLUMNS`
    order, spend rows in :data:`SPEND_COLUMNS` order), every one of a round in one transaction:
    each one's counts of rows written, or an error for one that is not such a pair."""

    def job(records: list[Any]) -> list[Any]:
        out: list[Any] = []
        impressions: list[Sequence[object]] = []
        spend: list[Sequence[object]] = []
        for record in records:
            if not _record_pair(record):
                out.append(InvalidInput("the ad store's writer was sent no impressions"))
                continue
            impressions += record[0]
            spend += record[1]
            out.append((len(record[0]), len(record[1])))
        _insert_records(engine, impressions, spend)
        return out

    return job


def _insert_records(
    engine: Engine, impressions: Sequence[Sequence[object]], spend: Sequence[Sequence[object]]
) -> tuple[int, int]:
    """Impression and spend rows written in one transaction, in the store's write turn."""
    with (
        translate(StoreError, "recording impressions and charges"),
        write_turn(engine),
        engine.begin() as c,
    ):
        shown = insert_rows(c, t.impressions, IMPRESSION_COLUMNS, impressions)
        charged = insert_rows(c, t.spend, SPEND_COLUMNS, spend)
    return shown, charged


def _record_pair(record: object) -> bool:
    return (
        isinstance(record, tuple)
        and len(record) == 2
        and isinstance(record[0], list)
        and isinstance(record[1], list)
        and all(isinstance(row, tuple) and len(row) == len(IMPRESSION_COLUMNS) for row in record[0])
        and all(isinstance(row, tuple) and len(row) == len(SPEND_COLUMNS) for row in record[1])
    )


def _opted_out(
    platform: str,
    person: str,
    at: datetime,
    member: Sequence[tuple[str, str | None, str | None]],
    opt_outs: dict[tuple[str, str], list[tuple[str, str | None]]],
) -> bool:
    """Whether a sale/sharing opt-out of ``opt_outs`` (by controller and person: since, until,
    stored text, which sorts as the instants do) is in force at ``at`` for ``person``: recorded
    by ``platform``, or by the provider of an audience they are in (``member``: audience,
    provider, their id there) for the id it knows them by."""
    instant = to_text(at)
    names = [(platform, person)]
    names += [
        (provider, source)
        for _audience, provider, source in member
        if provider is not None and source is not None
    ]
    return any(
        since <= instant and (revoked is None or revoked > instant)
        for name in names
        for since, revoked in opt_outs.get(name, ())
    )


class AdsStore:
    """The ad platform's accounts, audiences, campaigns and people's signals in one store.

    With a shared writer (``writer``, :mod:`accord.store.writer`, whose :data:`RECORD_JOB` is
    :func:`record_many` on this store), ad requests' impressions and charges are recorded by it,
    in one transaction with every other process's waiting; when it cannot be reached, here.
    """

    def __init__(
        self, engine: Engine, platform: str, *, writer: WriterClient | None = None
    ) -> None:
        self.engine = engine
        self.platform = platform
        self.writer = writer
        self._signals_sql: dict[tuple[str, int], str] = {}
        # Each person's signals as last read, with the values they were built from: built again
        # only when what the store holds of them differs.
        self._known: dict[str, tuple[tuple[object, ...], PersonSignals]] = {}

    # -- accounts and audiences -------------------------------------------------------------------

    def add_advertiser(self, advertiser: Advertiser) -> Advertiser:
        """Open an advertiser's account on this platform."""
        if advertiser.platform != self.platform:
            raise InvalidInput(
                f"advertiser {advertiser.id} is on {advertiser.platform}, not {self.platform}"
            )
        with translate(StoreError, f"adding advertiser {advertiser.id}"), self.engine.begin() as c:
            self._require_parties(c, {advertiser.platform, advertiser.party} - {None})
            if c.execute(
                select(t.advertisers.c.id).where(t.advertisers.c.id == advertiser.id)
            ).first():
                raise InvalidInput(f"advertiser {advertiser.id} exists already")
            c.execute(
                t.advertisers.insert().values(
                    id=advertiser.id,
                    name=advertiser.name,
                    platform=advertiser.platform,
                    party=advertiser.party,
                    created_at=_now(),
                )
            )
        return advertiser

    def add_audience(
        self, audience: Audience, members: Iterable[tuple[str, str | None]] = ()
    ) -> int:
        """Create an audience with its members (person at the platform, their id at the
        provider or None); returns how many members it holds."""
        rows = [(audience.id, person, source) for person, source in members]
        with translate(StoreError, f"adding audience {audience.id}"), self.engine.begin() as c:
            self._insert_audience(c, audience)
            insert_rows(c, t.audience_members, ("audience_id", "person", "source_person"), rows)
        return len(rows)

    def _insert_audience(self, c: Connection, audience: Audience) -> None:
        """Insert ``audience``'s row, its advertiser and provider checked first."""
        self._require_advertiser(c, audience.advertiser)
        if audience.provider is not None:
            self._require_parties(c, {audience.provider})
        c.execute(
            t.audiences.insert().values(
                id=audience.id,
                advertiser=audience.advertiser,
                name=audience.name,
                provider=audience.provider,
                created_at=_now(),
            )
        )

    def replace_audience_members(
        self, audience: Audience, members: Iterable[tuple[str, str | None]]
    ) -> int:
        """Create ``audience`` if it is new, and make ``members`` its members (every earlier
        member not among them leaves it), in one transaction; returns how many it holds."""
        rows = [(audience.id, person, source) for person, source in members]
        m = t.audience_members.c
        with translate(StoreError, f"replacing audience {audience.id}"), self.engine.begin() as c:
            found = c.execute(
                select(t.audiences.c.advertiser, t.audiences.c.provider).where(
                    t.audiences.c.id == audience.id
                )
            ).first()
            if found is None:
                self._insert_audience(c, audience)
            elif (found.advertiser, found.provider) != (audience.advertiser, audience.provider):
                raise InvalidInput(
                    f"audience {audience.id} belongs to {found.advertiser} with data of "
                    f"{found.provider}, not to {audience.advertiser} with data of "
                    f"{audience.provider}"
                )
            c.execute(t.audience_members.delete().where(m.audience_id == audience.id))
            insert_rows(c, t.audience_members, ("audience_id", "person", "source_person"), rows)
        return len(rows)

    def audience(self, audience: str) -> Audience | None:
        """The audience ``audience``, or None if there is none."""
        a = t.audiences.c
        with translate(StoreError, f"reading audience {audience}"), self.engine.connect() as c:
            row = c.execute(
                select(a.id, a.advertiser, a.name, a.provider).where(a.id == audience)
            ).first()
        return None if row is None else Audience(row.id, row.advertiser, row.name, row.provider)

    def audience_members(self, audience: str) -> frozenset[str]:
        """The people (at the platform) in ``audience``."""
        m = t.audience_members.c
        with translate(StoreError, f"reading audience {audience}"), self.engine.connect() as c:
            return frozenset(c.execute(select(m.person).where(m.audience_id == audience)).scalars())

    def add_campaign(self, campaign: Campaign) -> Campaign:
        """Record a campaign; the store numbers it (``campaign.id`` is ignored) and sets whether it
        uses partner data from its audiences. Returns it as recorded."""
        tg = campaign.targeting
        named = tg.every_audience
        with translate(StoreError, f"adding campaign {campaign.name!r}"), self.engine.begin() as c:
            self._require_advertiser(c, campaign.advertiser)
            found = {
                row.id: row.provider
                for row in c.execute(
                    select(t.audiences.c.id, t.audiences.c.provider).where(
                        t.audiences.c.id.in_(sorted(named))
                    )
                )
            }
            missing = sorted(named - set(found))
            if missing:
                raise NotFound(f"no audience {missing[0]!r}", where=f"campaign {campaign.name!r}")
            partner = any(p is not None and p != self.platform for p in found.values())
            s = campaign.schedule
            new_id = c.execute(
                t.campaigns.insert()
                .values(
                    advertiser=campaign.advertiser,
                    name=campaign.name,
                    status=campaign.status.value,
                    bid_strategy=campaign.bid.strategy.value,
                    bid_micros=campaign.bid.micros,
                    daily_budget_micros=campaign.daily_budget,
                    lifetime_budget_micros=campaign.lifetime_budget,
                    frequency_cap=campaign.frequency_cap,
                    starts_at=s.start,
                    ends_at=s.end,
                    hours=None if s.hours is None else json.dumps(sorted(s.hours)),
                    regions=_texts(tg.regions),
                    age_bands=_texts(tg.age_bands),
                    interests=_texts(tg.interests),
                    partner_data=partner,
                    created_at=_now(),
                )
                .returning(t.campaigns.c.id)
            ).scalar_one()
            if named:
                c.execute(
                    t.campaign_audiences.insert(),
                    [
                        {
                            "campaign_id": new_id,
                            "audience_id": a,
                            "excluded": a in tg.excluded_audiences,
                        }
                        for a in sorted(named)
                    ],
                )
            c.execute(
                t.creatives.insert(),
                [
                    {
                        "campaign_id": new_id,
                        "id": cr.id,
                        "headline": cr.headline,
                        "body": cr.body,
                        "url": cr.url,
                    }
                    for cr in campaign.creatives
                ],
            )
            self._move_revision(c)
        return Campaign(
            id=int(new_id),
            advertiser=campaign.advertiser,
            name=campaign.name,
            daily_budget=campaign.daily_budget,
            schedule=campaign.schedule,
            bid=campaign.bid,
            creatives=campaign.creatives,
            targeting=campaign.targeting,
            lifetime_budget=campaign.lifetime_budget,
            frequency_cap=campaign.frequency_cap,
            status=campaign.status,
            partner_data=partner,
        )

    def set_campaign_status(self, campaign: int, status: CampaignStatus) -> bool:
        """Pause (``PAUSED``), resume (``ACTIVE``) or end one of this platform's campaigns, and
        move the campaigns revision in the same transaction, so that every ad server stops (or
        starts) showing it at its next group of requests. True if its status changed (a campaign
        already so is left as it is). An id this platform has no campaign by is refused."""
        cm, ad = t.campaigns.c, t.advertisers.c
        with (
            translate(StoreError, f"setting campaign {campaign}'s status"),
            self.engine.begin() as c,
        ):
            found = c.execute(
                select(cm.status)
                .join(t.advertisers, ad.id == cm.advertiser)
                .where(cm.id == campaign, ad.platform == self.platform)
            ).first()
            if found is None:
                raise NotFound(f"{self.platform} has no campaign {campaign}")
            if found.status == status.value:
                return False
            c.execute(update(t.campaigns).where(cm.id == campaign).values(status=status.value))
            self._move_revision(c)
        return True

    def campaigns_revision(self) -> int:
        """How many times this platform's campaigns were written (added, paused, resumed): a
        number that moves in the same transaction as each such write (0 before any)."""
        r = t.campaign_revisions.c
        with translate(StoreError, "reading the campaigns revision"), self.engine.connect() as c:
            found = c.execute(select(r.revision).where(r.platform == self.platform)).scalar()
        return int(found or 0)

    def _move_revision(self, c: Connection) -> None:
        """Move this platform's campaigns revision, in the transaction of ``c`` (one statement,
        the same on SQLite and PostgreSQL: the row is made at the platform's first write)."""
        c.execute(
            text(
                f"INSERT INTO {_REVISIONS} (platform, revision) VALUES (:platform, 1) "  # noqa: S608
                f"ON CONFLICT (platform) DO UPDATE SET revision = {_REVISIONS}.revision + 1"
            ),
            {"platform": self.platform},
        )

    def _require_parties(self, c: Connection, parties: set[str | None]) -> None:
        known = set(
            c.execute(
                select(store_tables.parties.c.id).where(
                    store_tables.parties.c.id.in_(sorted(p for p in parties if p))
                )
            ).scalars()
        )
        missing = sorted(p for p in parties if p and p not in known)
        if missing:
            raise NotFound(f"no party {missing[0]!r}: register it first")

    def _require_advertiser(self, c: Connection, advertiser: str) -> None:
        row = c.execute(
            select(t.advertisers.c.platform).where(t.advertisers.c.id == advertiser)
        ).first()
        if row is None:
            raise NotFound(f"no advertiser {advertiser!r}")
        if row.platform != self.platform:
            raise InvalidInput(f"advertiser {advertiser} is on {row.platform}, not {self.platform}")

    # -- reading ----------------------------------------------------------------------------------

    def advertisers(self) -> list[Advertiser]:
        """Every advertiser on this platform, by id."""
        a = t.advertisers.c
        with translate(StoreError, "reading advertisers"), self.engine.connect() as c:
            rows = c.execute(
                select(a.id, a.name, a.platform, a.party)
                .where(a.platform == self.platform)
                .order_by(a.id)
            ).all()
        return [Advertiser(r.id, r.name, r.platform, r.party) for r in rows]

    def campaigns(self) -> list[Campaign]:
        """Every campaign of this platform's advertisers, by id."""
        cm, ad = t.campaigns.c, t.advertisers.c
        with translate(StoreError, "reading campaigns"), self.engine.connect() as c:
            rows = c.execute(
                select(t.campaigns)
                .join(t.advertisers, ad.id == cm.advertiser)
                .where(ad.platform == self.platform)
                .order_by(cm.id)
            ).all()
            audiences: dict[int, list[tuple[str, bool]]] = {}
            for r in c.execute(select(t.campaign_audiences)):
                audiences.setdefault(r.campaign_id, []).append((r.audience_id, r.excluded))
            creatives: dict[int, list[Creative]] = {}
            for r in c.execute(select(t.creatives).order_by(t.creatives.c.id)):
                creatives.setdefault(r.campaign_id, []).append(
                    Creative(r.id, r.headline, r.body, r.url)
                )
        out = []
        for r in rows:
            named = audiences.get(r.id, [])
            out.append(
                Campaign(
                    id=r.id,
                    advertiser=r.advertiser,
                    name=r.name,
                    daily_budget=r.daily_budget_micros,
                    schedule=Schedule(
                        r.starts_at,
                        r.ends_at,
                        None if r.hours is None else frozenset(json.loads(r.hours)),
                    ),
                    bid=Bid(BidStrategy(r.bid_strategy), r.bid_micros),
                    creatives=tuple(creatives.get(r.id, ())),
                    targeting=Targeting(
                        regions=tuple(json.loads(r.regions)),
                        age_bands=frozenset(json.loads(r.age_bands)),
                        interests=frozenset(json.loads(r.interests)),
                        audiences=frozenset(a for a, excluded in named if not excluded),
                        excluded_audiences=frozenset(a for a, excluded in named if excluded),
                    ),
                    lifetime_budget=r.lifetime_budget_micros,
                    frequency_cap=r.frequency_cap,
                    status=CampaignStatus(r.status),
                    partner_data=r.partner_data,
                )
            )
        return out

    # -- people's signals -------------------------------------------------------------------------

    def set_profiles(self, profiles: Iterable[tuple[str, str, frozenset[str]]]) -> int:
        """Record the platform's own signals (person, age band, interests), replacing any."""
        rows = [
            (self.platform, person, band, _texts(interests), _now())
            for person, band, interests in profiles
        ]
        with translate(StoreError, "recording ad profiles"), self.engine.begin() as c:
            c.execute(t.profiles.delete().where(t.profiles.c.platform == self.platform))
            insert_rows(
                c, t.profiles, ("platform", "person", "age_band", "interests", "updated_at"), rows
            )
        return len(rows)

    def signals(self, person: str, at: datetime, *, gpc: bool = False) -> PersonSignals:
        """What an ad request for ``person`` is judged on: where they live (the store's people),
        their profile, their audiences, and whether a sale/sharing opt-out is in force for them
        at ``at`` — recorded by this platform, or by the provider of an audience they are in for
        the id it knows them by, or sent with this request (``gpc``, a ``Sec-GPC: 1`` header)."""
        found = self.signals_many([(person, at, gpc)])[0]
        if isinstance(found, NotFound):
            raise found
        return found

    def signals_many(
        self, requests: Sequence[tuple[str, datetime, bool]]
    ) -> list[PersonSignals | NotFound]:
        """:meth:`signals` for each of ``requests`` (person, instant, GPC signal), read with one
        statement for all of them (:func:`_signals_sql`, on the driver's own cursor); a person
        the platform does not know, or has no ad profile of, is a :class:`NotFound` in their
        place.

        Nothing of what the store holds is kept from one call to the next: every call reads it
        all again, so that a profile, an audience or an opt-out written by any process counts at
        once. What is kept is what was built from it: a person's :class:`PersonSignals` is the
        object built last time if what it was built from is the same."""
        return self.signals_and_revision(requests)[0]

    def signals_and_revision(
        self, requests: Sequence[tuple[str, datetime, bool]]
    ) -> tuple[list[PersonSignals | NotFound], int | None]:
        """:meth:`signals_many` and, read by the same statement (as of the same moment), the
        platform's campaigns revision (:meth:`campaigns_revision`); None for no requests (no
        statement is run)."""
        if not requests:
            return [], None
        homes, memberships, opt_outs, revision = self._read_signals(requests)
        platform = self.platform
        out: list[PersonSignals | NotFound] = []
        for person, at, gpc in requests:
            home = homes.get(person)
            if home is None:
                out.append(NotFound(f"{platform} has no person {person!r}"))
            elif home[1] is None:
                out.append(NotFound(f"{platform} has no ad profile of person {person!r}"))
            else:
                member = memberships.get(person, ())
                opted_out = gpc or (
                    bool(opt_outs) and _opted_out(platform, person, at, member, opt_outs)
                )
                out.append(self._signals_of(person, home, member, opted_out))
        return out, revision

    def _read_signals(
        self, requests: Sequence[tuple[str, datetime, bool]]
    ) -> tuple[
        dict[str, tuple[str, str | None, str | None]],
        dict[str, list[tuple[str, str | None, str | None]]],
        dict[tuple[str, str], list[tuple[str, str | None]]],
        int,
    ]:
        """The requests' people's places and profiles (jurisdiction, age band, interests), their
        memberships (audience, provider, id at the provider), the sale/sharing opt-outs
        recorded for them by any controller (since, until: stored text), and the platform's
        campaigns revision, in one statement."""
        people = sorted({person for person, _at, _gpc in requests})
        latest = max(at for _person, at, _gpc in requests)
        with translate(StoreError, "reading people's ad signals"), self.engine.connect() as c:
            dialect = c.dialect.name
            sql = self._signals_sql.get((dialect, len(people)))
            if sql is None:
                sql = self._signals_sql[dialect, len(people)] = _signals_sql(dialect, len(people))
            since = latest if dialect == "postgresql" else to_text(latest)
            cursor = c.connection.cursor()
            try:
                platform = self.platform
                cursor.execute(
                    sql,
                    (
                        *(platform, *people),
                        *people,
                        *(platform, *people, _SALE_SHARING, since),
                        *(*people, _SALE_SHARING, since),
                        platform,
                    ),
                )
                rows = cursor.fetchall()
            finally:
                cursor.close()
        homes: dict[str, tuple[str, str | None, str | None]] = {}
        memberships: dict[str, list[tuple[str, str | None, str | None]]] = {}
        opt_outs: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
        revision = 0
        for tag, first, second, third, fourth in rows:
            if tag == 0:
                homes[first] = (second, third, fourth)
            elif tag == 1:
                memberships.setdefault(first, []).append((second, third, fourth))
            elif tag == 2:
                opt_outs.setdefault((first, second), []).append((third, fourth))
            else:
                revision = int(second)
        return homes, memberships, opt_outs, revision

    def _signals_of(
        self,
        person: str,
        home: tuple[str, str | None, str | None],
        member: Sequence[tuple[str, str | None, str | None]],
        opted_out: bool,
    ) -> PersonSignals:
        """The person's signals from what the store holds of them: the object built last time
        if that is the same (so that the masks found for it are found again at once)."""
        jurisdiction, band, interests = home
        basis = (jurisdiction, band, interests, tuple(sorted(a for a, _p, _s in member)), opted_out)
        kept = self._known.get(person)
        if kept is not None and kept[0] == basis:
            return kept[1]
        signals = PersonSignals(
            person,
            jurisdiction,
            str(band),
            frozenset(json.loads(str(interests))),
            frozenset(basis[3]),
            opted_out=opted_out,
        )
        if len(self._known) >= _SIGNALS_CACHE:
            self._known.clear()
        self._known[person] = (basis, signals)
        return signals

    # -- what requests leave ----------------------------------------------------------------------

    def record(
        self, impressions: Sequence[Sequence[object]], charges: Sequence[Charge]
    ) -> tuple[int, int]:
        """Append impression rows (:data:`IMPRESSION_COLUMNS`) and charges, in one transaction
        (the shared writer's, if there is one); returns how many of each were written."""
        spend = charge_rows(charges)
        if self.writer is not None:
            rows = [tuple(row) for row in impressions]
            sent, counts = self.writer.call(RECORD_JOB, (rows, spend))
            if sent:
                shown, charged = counts
                return int(shown), int(charged)
        return _insert_records(self.engine, impressions, spend)

    def click(
        self,
        request_id: str,
        slot: int,
        at: datetime,
        charge: Callable[[int, int, datetime, str], Charge | None],
    ) -> Click:
        """Record a click on the ad shown in ``slot`` of ad request ``request_id``, at ``at``.

        Counted once: the impression is marked clicked in the same transaction as its charge,
        and a second click on it (a double tap, a retry, a click fraud script) is answered as
        already counted and charges nothing, in this process or any other. ``charge`` (campaign
        id, price, instant, request id) charges a CPC campaign's budget and gives the charge to
        record, or None if it has ended. A click before its impression, or more than
        :data:`CLICK_WINDOW` after it, is refused; so is one on an ad no request showed."""
        im = t.impressions.c
        with (
            translate(StoreError, "recording a click"),
            write_turn(self.engine),
            self.engine.begin() as c,
        ):
            shown = c.execute(
                select(im.id, im.campaign_id, im.billing, im.price_micros, im.at, im.clicked).where(
                    im.platform == self.platform, im.request_id == request_id, im.slot == slot
                )
            ).first()
            if shown is None:
                raise NotFound(
                    f"{self.platform} showed no ad in slot {slot} of ad request {request_id!r}",
                    where="request_id",
                )
            moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
            if moment < shown.at:
                raise InvalidInput(
                    f"a click at {moment.isoformat()} comes before its ad was shown "
                    f"({shown.at.isoformat()})",
                    where="at",
                )
            if moment - shown.at > CLICK_WINDOW:
                raise InvalidInput(
                    f"a click at {moment.isoformat()} comes more than {CLICK_WINDOW.days} days "
                    f"after its ad was shown ({shown.at.isoformat()}); it is not counted",
                    where="at",
                )
            marked = c.execute(
                update(t.impressions)
                .where(im.id == shown.id, im.clicked.is_(False))
                .values(clicked=True)
            ).rowcount
            charged = 0
            if marked and shown.billing == BidStrategy.CPC.value:
                made = charge(shown.campaign_id, shown.price_micros, moment, request_id)
                if made is not None and made.micros:
                    insert_rows(c, t.spend, SPEND_COLUMNS, charge_rows([made]))
                    charged = made.micros
        return Click(
            request_id,
            slot,
            shown.campaign_id,
            shown.billing,
            counted=bool(marked),
            charged=charged,
        )


CLICK_WINDOW = timedelta(days=7)
"""How long after an ad was shown a click on it counts."""


class Click(NamedTuple):
    """A click as recorded: on which ad, whether it counted (the first click on the impression),
    and what it charged (a CPC campaign's price, at most what its budgets had left)."""

    request_id: str
    slot: int
    campaign: int
    billing: str
    counted: bool
    charged: int


__all__ = [
    "CLICK_WINDOW",
    "IMPRESSION_COLUMNS",
    "SPEND_COLUMNS",
    "AdsStore",
    "Click",
    "charge_rows",
    "insert_rows",
]
