"""The spend ledger on SQLite and PostgreSQL: records, closed days in the Merkle ledger, invoices.

A few days of traffic through a market are recorded; then every invoice must equal the records
summed again by a plain query, every ledger entry the day's records of its campaign, the ledger
must verify, and the auditor's replay must pass over the entries (they release nobody's data).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update

from accord.ads import tables as ads_t
from accord.ads.access import spend_beside_access
from accord.ads.auction import AuctionRules
from accord.ads.market import Market
from accord.ads.model import (
    Advertiser,
    Audience,
    Bid,
    BidStrategy,
    Campaign,
    Creative,
    Schedule,
    Targeting,
)
from accord.ads.spend import SpendBook, advertiser_months
from accord.ads.store import AdsStore
from accord.agreements import Status
from accord.audit.replay import audit
from accord.consent import OptOut, OptOutKind, Person, SignalSource
from accord.erasure import erase
from accord.errors import InvalidInput
from accord.ledger.entries import (
    ENTRY_KINDS,
    AdSpendEntry,
    DecisionEntry,
    ReleaseEntry,
    decode_leaf,
)
from accord.service import Accord

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 30, tzinfo=UTC)  # the season crosses into February
DAYS = 4
PEOPLE = [f"c{i:07d}" for i in range(60)]


@pytest.fixture
def accord(db_url: str, tmp_path: Path) -> Iterator[Accord]:
    with Accord.open(db_url, tmp_path) as opened:
        opened.add_party("chirp", "Chirp")
        opened.add_party("reelix", "Reelix")
        opened.add_people(
            [Person(p, "chirp", "US-CA" if n % 2 else "DE") for n, p in enumerate(PEOPLE)]
        )
        yield opened


def season(accord: Accord) -> tuple[AdsStore, list[Campaign]]:
    """Two advertisers, three campaigns (one with partner data), four days of traffic."""
    store = AdsStore(accord.engine, "chirp")
    store.add_advertiser(Advertiser("reelix", "Reelix", "chirp", party="reelix"))
    store.add_advertiser(Advertiser("northwind", "Northwind", "chirp"))
    store.add_audience(
        Audience("viewers", "reelix", "Viewers", provider="reelix"),
        [(p, "r" + p[1:]) for p in PEOPLE[:30]],
    )
    store.set_profiles((p, "25-34", frozenset({"fitness"})) for p in PEOPLE)
    ad = (Creative("ad", "An ad", "", "https://example.com/"),)
    start = Schedule(START - timedelta(days=2))
    made = [
        store.add_campaign(
            Campaign(
                id=0,
                advertiser="reelix",
                name="viewers",
                daily_budget=400_000,
                schedule=start,
                bid=Bid(BidStrategy.CPM, 8_000_000),
                creatives=ad,
                targeting=Targeting(audiences=frozenset({"viewers"})),
            )
        ),
        store.add_campaign(
            Campaign(
                id=0,
                advertiser="reelix",
                name="everyone",
                daily_budget=300_000,
                schedule=start,
                bid=Bid(BidStrategy.CPC, 90_000),
                creatives=ad,
                lifetime_budget=900_000,
            )
        ),
        store.add_campaign(
            Campaign(
                id=0,
                advertiser="northwind",
                name="runners",
                daily_budget=250_000,
                schedule=start,
                bid=Bid(BidStrategy.CPM, 6_000_000),
                creatives=ad,
                targeting=Targeting(regions=("US",), interests=frozenset({"fitness"})),
            )
        ),
    ]
    return store, made


def traffic(accord: Accord, store: AdsStore) -> SpendBook:
    campaigns = store.campaigns()
    rng = random.Random(4)
    market = Market(campaigns, AuctionRules(), lambda _p, _m: np.full(len(campaigns), 0.03), seed=2)
    book = SpendBook(accord.engine, accord.ledger, "chirp")
    for d in range(DAYS):
        midnight = START + timedelta(days=d)
        shown = []
        for k in range(250):
            at = midnight + timedelta(seconds=k * 340 + rng.randrange(340))
            person = store.signals(rng.choice(PEOPLE), at)
            for p in market.request(person, at, 2):
                clicked = p.campaign.bid.strategy is BidStrategy.CPC and rng.random() < 0.2
                if clicked:
                    market.click(p, at)
                shown.append(
                    (
                        p.request_id,
                        "chirp",
                        person.person,
                        p.campaign.id,
                        p.campaign.advertiser,
                        p.creative.id,
                        p.slot,
                        at,
                        at.date(),
                        p.billing.value,
                        p.price,
                        p.predicted_ctr,
                        None,
                        clicked,
                        None,
                        False,
                    )
                )
        store.record(shown, market.take_charges())
        book.close_day(midnight.date())
    book.invoice_month("2026-01")
    book.invoice_month("2026-02")
    return book


def test_invoices_and_ledger_entries_equal_the_records(accord: Accord) -> None:
    store, made = season(accord)
    assert [c.partner_data for c in made] == [True, False, False]
    assert store.campaigns() == made  # what the store holds is what was recorded
    book = traffic(accord, store)

    s = ads_t.spend
    with accord.engine.connect() as c:
        rows = c.execute(
            select(s.c.campaign_id, s.c.advertiser, s.c.day, s.c.event, s.c.amount_micros)
        ).all()
    assert rows, "the traffic charged something"
    by_month: dict[tuple[str, str], int] = defaultdict(int)
    by_day: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for campaign, advertiser, stored, event, amount in rows:
        day = stored if isinstance(stored, date) else date.fromisoformat(stored)
        by_month[(advertiser, day.isoformat()[:7])] += amount
        sums = by_day[(campaign, day.isoformat())]
        sums[0 if event == "impression" else 1] += 1
        sums[2] += amount

    invoices = book.invoices()
    assert {(i.advertiser, i.month): i.total for i in invoices} == dict(by_month)
    for invoice in invoices:
        assert book.reconcile(invoice.id) == []
        assert invoice.total == sum(line.amount for line in invoice.lines)

    entries = [leaf.entry() for leaf in accord.ledger.recent(1_000)]
    spend_entries = [e for e in entries if e["kind"] == "ad_spend"]
    assert {
        (e["campaign"], e["day"]): [e["impressions"], e["clicks"], e["amount_micros"]]
        for e in spend_entries
    } == dict(by_day)
    for e in spend_entries:
        assert e["subjects"] == []
        assert e["people"] == 0
        assert e["partner_data"] == (e["campaign"] == made[0].id)
    assert accord.ledger.verify(workers=1).ok

    # Closing a day again adds nothing; an invoice asked for again is the one written.
    size = accord.ledger.head().size
    assert book.close_day(START.date()) == []
    assert accord.ledger.head().size == size
    assert (
        book.invoice("reelix", "2026-01") == book.invoices(advertiser="reelix", month="2026-01")[0]
    )

    months = advertiser_months(accord.engine, "chirp")
    assert {(m.advertiser, m.month): m.spend for m in months} == dict(by_month)
    with accord.engine.connect() as c:
        shown = c.execute(select(func.count()).select_from(ads_t.impressions)).scalar_one()
    assert sum(m.impressions for m in months) == shown
    assert {m.advertiser for m in months if m.partner_data} == {"reelix"}

    # A record changed after invoicing no longer reconciles, and says where.
    with accord.engine.begin() as c:
        c.execute(update(s).where(s.c.id == 1).values(amount_micros=s.c.amount_micros + 1))
    changed = [i for i in invoices if book.reconcile(i.id)]
    assert len(changed) == 1
    assert "total" in book.reconcile(changed[0].id)[0]


def test_the_auditors_replay_passes_over_spend_entries(accord: Accord) -> None:
    store, _ = season(accord)
    traffic(accord, store)
    report = audit(accord.engine, accord.sessions, {})
    assert report.releases == 0
    assert report.differences == []


def test_an_opt_out_recorded_by_the_audiences_provider_counts(accord: Accord) -> None:
    store, _ = season(accord)
    at = START + timedelta(hours=1)
    assert not store.signals(PEOPLE[3], at).opted_out
    # Reelix records an opt-out for the person it knows as r0000003: Chirp's ads honour it.
    accord.opt_out(OptOut("r0000003", "reelix", OptOutKind.SALE_SHARING, SignalSource.GPC, at))
    accord.add_people([Person("r0000003", "reelix", "US-CA")])
    assert store.signals(PEOPLE[3], at + timedelta(minutes=1)).opted_out
    assert not store.signals(PEOPLE[3], at - timedelta(minutes=1)).opted_out
    assert store.signals(PEOPLE[4], at, gpc=True).opted_out


def test_erasure_deletes_the_persons_ad_rows(accord: Accord) -> None:
    store, _ = season(accord)
    traffic(accord, store)
    person = PEOPLE[1]
    with accord.engine.connect() as c:
        seen = c.execute(
            select(func.count())
            .select_from(ads_t.impressions)
            .where(ads_t.impressions.c.person == person)
        ).scalar_one()
    assert seen > 0
    done = erase(accord, "chirp", person)
    assert done.deleted["ads_impressions"] == seen
    assert done.deleted["ads_profiles"] == 1
    assert done.deleted["ads_audience_members"] == 1
    with accord.engine.connect() as c:
        for table in (ads_t.impressions, ads_t.profiles, ads_t.audience_members):
            column = table.c.person
            assert (
                c.execute(
                    select(func.count()).select_from(table).where(column == person)
                ).scalar_one()
                == 0
            )
    # The charges stay: they name no one.
    with accord.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM ads_spend")).scalar_one() > 0


def test_a_spend_entry_names_nobody_and_writes_canonical_json() -> None:
    entry = AdSpendEntry(
        agreement=None,
        reason="charged",
        platform="chirp",
        advertiser="reelix",
        campaign=3,
        day="2026-02-01",
        impressions=10,
        clicks=2,
        amount_micros=123_456,
        partner_data=True,
    )
    assert entry.encode() == rfc8785.dumps(entry.leaf())
    with pytest.raises(InvalidInput, match="must not name"):
        AdSpendEntry(
            agreement=None,
            reason="x",
            platform="chirp",
            advertiser="a",
            campaign=1,
            day="2026-02-01",
            impressions=0,
            clicks=0,
            amount_micros=0,
            about=("chirp/c0000001",),
        )
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        AdSpendEntry(
            agreement=None,
            reason="x",
            platform="chirp",
            advertiser="a",
            campaign=1,
            day="1 Feb",
            impressions=0,
            clicks=0,
            amount_micros=0,
        )


@pytest.mark.unit
@settings(max_examples=200)
@given(
    advertiser=st.text(max_size=20),
    reason=st.text(min_size=1, max_size=60),
    campaign=st.integers(0, 2**53 - 1),
    day=st.dates(),
    counts=st.tuples(*(st.integers(0, 2**53 - 1) for _ in range(3))),
    partner=st.booleans(),
)
def test_spend_leaves_are_exactly_rfc8785_and_decode_to_their_kind(
    *,
    advertiser: str,
    reason: str,
    campaign: int,
    day: date,
    counts: tuple[int, int, int],
    partner: bool,
) -> None:
    entry = AdSpendEntry(
        agreement=None,
        reason=reason,
        platform="chirp",
        advertiser=advertiser,
        campaign=campaign,
        day=day.isoformat(),
        impressions=counts[0],
        clicks=counts[1],
        amount_micros=counts[2],
        partner_data=partner,
    )
    assert entry.encode() == rfc8785.dumps(entry.leaf())
    leaf = decode_leaf(entry.encode())
    assert ENTRY_KINDS[leaf["kind"]] is AdSpendEntry
    assert leaf["subjects"] == []
    assert leaf["amount_micros"] == counts[2]


def test_spend_beside_access_reads_the_records_the_registry_and_the_ledger(
    accord: Accord,
) -> None:
    """Per advertiser and month: the spend records' sums beside the access of its party, counted
    from the ledger's decisions and releases dated in the month and the agreements in force."""
    store, _ = season(accord)
    traffic(accord, store)
    examples = resources.files("accord") / "examples"
    accord.register((examples / "chirp-reelix.yaml").read_text(), source="x.yaml", by="test")
    accord.review(
        "chirp-reelix", reviewer="board", findings="ok", approved=True, on=date(2026, 1, 2)
    )
    accord.move("chirp-reelix", Status.ACTIVE, by="board")
    clauses = len(accord.agreement("chirp-reelix").agreement.clauses)

    def release(at: datetime, provider: str, recipient: str, rows: int) -> ReleaseEntry:
        return ReleaseEntry(
            agreement="chirp-reelix",
            clause="friend-picker",
            purpose="functional.service",
            categories=("user.social",),
            reason="a release",
            people=rows // 2,
            at=at,
            provider=provider,
            recipient=recipient,
            operation="read",
            rows=rows,
        )

    def decision(at: datetime, allowed: bool, agreement: str = "chirp-reelix") -> DecisionEntry:
        return DecisionEntry(
            agreement=agreement,
            clause="friend-picker",
            purpose="functional.service",
            categories=("user.social",),
            reason="decided",
            people=0,
            at=at,
            allowed=allowed,
            recipient="reelix",
        )

    feb = datetime(2026, 2, 1, 9, tzinfo=UTC)
    accord.ledger.append(
        [
            decision(START, True),
            release(START, "chirp", "reelix", 10),
            decision(feb, True),
            release(feb, "chirp", "reelix", 6),
            decision(feb, True),
            release(feb, "reelix", "chirp", 4),
            decision(feb, False),
            decision(feb, False, agreement="a-secret-one"),  # Reelix asked: counted too
            decision(datetime(2026, 3, 1, tzinfo=UTC), True),  # a month with no spend
        ]
    )
    result = spend_beside_access(accord.engine, "chirp", by="month")
    months = advertiser_months(accord.engine, "chirp")
    assert [(r.advertiser, r.period) for r in result.rows] == sorted(
        ((m.advertiser, m.month) for m in months),
        key=lambda k: (-sum(m.spend for m in months if m.advertiser == k[0]), k),
    )
    for r in result.rows:
        (m,) = [m for m in months if (m.advertiser, m.month) == (r.advertiser, r.period)]
        assert (r.spend, r.impressions, r.clicks, r.conversions) == (
            m.spend,
            m.impressions,
            m.clicks,
            m.conversions,
        )
        assert r.days == {"2026-01": 2, "2026-02": 2}[r.period]
        if r.advertiser == "northwind":
            assert r.access is None
    access = {r.period: r.access for r in result.rows if r.advertiser == "reelix"}
    january, february = access["2026-01"], access["2026-02"]
    assert january is not None
    assert february is not None
    assert (january.agreements, january.clauses) == (("chirp-reelix",), clauses)
    assert (january.allowed, january.refused, january.received, january.given) == (1, 0, 10, 0)
    assert (february.allowed, february.refused) == (2, 2)
    assert (february.received, february.given, february.people, february.releases) == (6, 4, 5, 2)
    # The ledger's ad_spend entries add up to the records, and are counted.
    assert result.spend_in_ledger == result.spend == sum(m.spend for m in months)
    assert result.spend_entries == sum(
        1 for leaf in accord.ledger.recent(1_000) if leaf.entry()["kind"] == "ad_spend"
    )
    yearly = spend_beside_access(accord.engine, "chirp")
    assert {r.period for r in yearly.rows} == {"2026"}
    reelix = next(r for r in yearly.rows if r.advertiser == "reelix")
    assert reelix.access is not None
    assert (reelix.access.allowed, reelix.access.refused) == (4, 2)  # March's decision too
    with pytest.raises(InvalidInput, match="year or month"):
        spend_beside_access(accord.engine, "chirp", by="week")  # type: ignore[arg-type]
