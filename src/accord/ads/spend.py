"""The spend ledger: every charge a record, each campaign's day a ledger entry, monthly invoices.

* Every charge (an impression of a CPM campaign, a click of a CPC one) is one row of
  ``ads_spend``, appended and never changed (:meth:`accord.ads.store.AdsStore.record`).
* :meth:`SpendBook.close_day` sums a day's rows per campaign into ``ads_spend_days`` and appends
  one :class:`accord.ledger.entries.AdSpendEntry` per campaign to Accord's ledger: the advertiser,
  the campaign, the day, impressions and clicks charged, the amount, and whether the campaign
  targets with partner data. The entries name nobody. Closing a day twice adds nothing.
* :meth:`SpendBook.invoice` writes an advertiser's invoice for a calendar month, a line per
  campaign, from the records themselves; :meth:`SpendBook.reconcile` sums the records again and
  says whether the invoice still matches them to the micro.
* :func:`advertiser_months` gives, per advertiser and month, the spend with impressions, clicks
  and conversions: what ``accord ads spend`` prints and a report can show.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, and_, case, func, select

from accord.ads import tables as t
from accord.ads.model import show_money
from accord.errors import InvalidInput, NotFound, StoreError, translate
from accord.ledger.entries import AdSpendEntry
from accord.ledger.log import Ledger


def month_of(day: date) -> str:
    """The calendar month of a day: ``YYYY-MM``."""
    return f"{day.year:04d}-{day.month:02d}"


def month_days(month: str) -> tuple[date, date]:
    """The first day of ``month`` (``YYYY-MM``) and the first day after it."""
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise InvalidInput(f"{month!r} is not a month: write it YYYY-MM") from None
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, after


@dataclass(frozen=True, slots=True)
class SpendDay:
    """One campaign's charges of one closed day."""

    campaign: int
    advertiser: str
    day: date
    impressions: int
    clicks: int
    amount: int
    ledger_index: int | None


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One campaign's part of an invoice."""

    campaign: int
    impressions: int
    clicks: int
    amount: int


@dataclass(frozen=True, slots=True)
class Invoice:
    """An advertiser's invoice for a calendar month."""

    id: str
    advertiser: str
    month: str
    total: int
    charges: int
    lines: tuple[InvoiceLine, ...]

    def describe(self) -> str:
        """One line a person can read."""
        return (
            f"{self.id}: {self.advertiser}, {self.month}: {show_money(self.total)} for "
            f"{self.charges:,} charges on {len(self.lines)} campaigns"
        )


@dataclass(frozen=True, slots=True)
class AdvertiserMonth:
    """An advertiser's month: what it was charged, and what its ads did."""

    advertiser: str
    name: str
    month: str
    spend: int
    """Micros charged."""
    impressions: int
    clicks: int
    conversions: int
    partner_data: bool = False
    """Whether any of its campaigns that served this month targets with partner data."""

    def to_json(self) -> dict[str, Any]:
        """A JSON object (amounts in micros and as currency text)."""
        return {
            "advertiser": self.advertiser,
            "name": self.name,
            "month": self.month,
            "spend_micros": self.spend,
            "spend": show_money(self.spend),
            "impressions": self.impressions,
            "clicks": self.clicks,
            "conversions": self.conversions,
            "partner_data": self.partner_data,
        }


@dataclass
class _Sums:
    impressions: int = 0
    clicks: int = 0
    amount: int = 0
    charges: int = 0
    campaigns: dict[int, list[int]] = field(default_factory=dict)


class SpendBook:
    """The spend records of one platform's advertisers, their days and invoices."""

    def __init__(self, engine: Engine, ledger: Ledger, platform: str) -> None:
        self.engine = engine
        self.ledger = ledger
        self.platform = platform

    def _charged(self, first: date, after: date, advertiser: str | None = None) -> list[Any]:
        """Per campaign, charges from ``first`` up to ``after``: impressions, clicks, amount."""
        s, c, a = t.spend.c, t.campaigns.c, t.advertisers.c
        query = (
            select(
                s.campaign_id,
                s.advertiser,
                c.partner_data,
                func.sum(case((s.event == "impression", 1), else_=0)).label("impressions"),
                func.sum(case((s.event == "click", 1), else_=0)).label("clicks"),
                func.sum(s.amount_micros).label("amount"),
                func.count().label("charges"),
            )
            .join(t.campaigns, c.id == s.campaign_id)
            .join(t.advertisers, a.id == s.advertiser)
            .where(a.platform == self.platform, s.day >= first, s.day < after)
            .group_by(s.campaign_id, s.advertiser, c.partner_data)
            .order_by(s.campaign_id)
        )
        if advertiser is not None:
            query = query.where(s.advertiser == advertiser)
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())

    def close_day(self, day: date) -> list[SpendDay]:
        """Sum ``day``'s charges per campaign, record them and append one ledger entry each
        (durable before this returns); campaigns whose day is already closed are left alone."""
        after = date.fromordinal(day.toordinal() + 1)
        with translate(StoreError, f"closing the ads day {day}"):
            rows = self._charged(day, after)
            with self.engine.connect() as conn:
                closed = set(
                    conn.execute(
                        select(t.spend_days.c.campaign_id).where(t.spend_days.c.day == day)
                    ).scalars()
                )
            rows = [r for r in rows if r.campaign_id not in closed]
            if not rows:
                return []
            at = datetime(day.year, day.month, day.day, 23, 59, 59, 999_999, tzinfo=UTC)
            entries = [
                AdSpendEntry(
                    agreement=None,
                    reason=(
                        f"{self.platform} charged advertiser {r.advertiser} "
                        f"{show_money(int(r.amount), exact=True)} "
                        f"for campaign {r.campaign_id} on {day}"
                        + (", a campaign targeting with partner data" if r.partner_data else "")
                    ),
                    at=at,
                    platform=self.platform,
                    advertiser=r.advertiser,
                    campaign=int(r.campaign_id),
                    day=day.isoformat(),
                    impressions=int(r.impressions),
                    clicks=int(r.clicks),
                    amount_micros=int(r.amount),
                    partner_data=bool(r.partner_data),
                )
                for r in rows
            ]
            receipts = self.ledger.append(entries)
            days = [
                SpendDay(
                    int(r.campaign_id),
                    r.advertiser,
                    day,
                    int(r.impressions),
                    int(r.clicks),
                    int(r.amount),
                    receipt.index,
                )
                for r, receipt in zip(rows, receipts, strict=True)
            ]
            with self.engine.begin() as conn:
                conn.execute(
                    t.spend_days.insert(),
                    [
                        {
                            "campaign_id": d.campaign,
                            "day": d.day,
                            "advertiser": d.advertiser,
                            "impressions": d.impressions,
                            "clicks": d.clicks,
                            "amount_micros": d.amount,
                            "ledger_index": d.ledger_index,
                        }
                        for d in days
                    ],
                )
        return days

    def invoice(self, advertiser: str, month: str) -> Invoice | None:
        """Write ``advertiser``'s invoice for ``month`` from its charges (None if it has none);
        an invoice already written is returned as it stands."""
        first, after = month_days(month)
        existing = self.invoices(advertiser=advertiser, month=month)
        if existing:
            return existing[0]
        with translate(StoreError, f"invoicing {advertiser} for {month}"):
            rows = self._charged(first, after, advertiser)
            if not rows:
                return None
            lines = tuple(
                InvoiceLine(int(r.campaign_id), int(r.impressions), int(r.clicks), int(r.amount))
                for r in rows
            )
            invoice = Invoice(
                f"inv-{advertiser}-{month}",
                advertiser,
                month,
                sum(line.amount for line in lines),
                sum(int(r.charges) for r in rows),
                lines,
            )
            with self.engine.begin() as conn:
                conn.execute(
                    t.invoices.insert().values(
                        id=invoice.id,
                        advertiser=advertiser,
                        month=month,
                        total_micros=invoice.total,
                        charges=invoice.charges,
                        issued_at=datetime.now(UTC),
                    )
                )
                conn.execute(
                    t.invoice_lines.insert(),
                    [
                        {
                            "invoice_id": invoice.id,
                            "campaign_id": line.campaign,
                            "impressions": line.impressions,
                            "clicks": line.clicks,
                            "amount_micros": line.amount,
                        }
                        for line in lines
                    ],
                )
        return invoice

    def invoice_month(self, month: str) -> list[Invoice]:
        """Invoices for ``month`` of every advertiser with charges in it."""
        first, after = month_days(month)
        s, a = t.spend.c, t.advertisers.c
        with (
            translate(StoreError, f"finding who to invoice for {month}"),
            self.engine.connect() as c,
        ):
            charged = (
                c.execute(
                    select(s.advertiser)
                    .join(t.advertisers, a.id == s.advertiser)
                    .where(a.platform == self.platform, s.day >= first, s.day < after)
                    .group_by(s.advertiser)
                    .order_by(s.advertiser)
                )
                .scalars()
                .all()
            )
        made = [self.invoice(advertiser, month) for advertiser in charged]
        return [i for i in made if i is not None]

    def invoices(self, *, advertiser: str | None = None, month: str | None = None) -> list[Invoice]:
        """Invoices written, by advertiser and month."""
        i, line = t.invoices.c, t.invoice_lines.c
        query = select(t.invoices).order_by(i.advertiser, i.month)
        if advertiser is not None:
            query = query.where(i.advertiser == advertiser)
        if month is not None:
            query = query.where(i.month == month)
        with translate(StoreError, "reading invoices"), self.engine.connect() as c:
            heads = c.execute(query).all()
            lines: dict[str, list[InvoiceLine]] = defaultdict(list)
            if heads:
                for r in c.execute(
                    select(t.invoice_lines)
                    .where(line.invoice_id.in_([h.id for h in heads]))
                    .order_by(line.invoice_id, line.campaign_id)
                ):
                    lines[r.invoice_id].append(
                        InvoiceLine(r.campaign_id, r.impressions, r.clicks, r.amount_micros)
                    )
        return [
            Invoice(h.id, h.advertiser, h.month, h.total_micros, h.charges, tuple(lines[h.id]))
            for h in heads
        ]

    def reconcile(self, invoice_id: str) -> list[str]:
        """What differs between an invoice and its records summed again (empty: it matches)."""
        found = [i for i in self.invoices() if i.id == invoice_id]
        if not found:
            raise NotFound(f"no invoice {invoice_id!r}")
        invoice = found[0]
        first, after = month_days(invoice.month)
        rows = {int(r.campaign_id): r for r in self._charged(first, after, invoice.advertiser)}
        problems = []
        total = sum(int(r.amount) for r in rows.values())
        charges = sum(int(r.charges) for r in rows.values())
        if total != invoice.total:
            problems.append(f"total {invoice.total} micros, records {total}")
        if charges != invoice.charges:
            problems.append(f"{invoice.charges} charges invoiced, {charges} recorded")
        listed = {line.campaign: line for line in invoice.lines}
        for campaign in sorted(set(rows) | set(listed)):
            line, r = listed.get(campaign), rows.get(campaign)
            mine = (line.impressions, line.clicks, line.amount) if line else (0, 0, 0)
            theirs = (int(r.impressions), int(r.clicks), int(r.amount)) if r else (0, 0, 0)
            if mine != theirs:
                problems.append(f"campaign {campaign}: invoiced {mine}, recorded {theirs}")
        return problems


def advertiser_months(engine: Engine, platform: str) -> list[AdvertiserMonth]:
    """Per advertiser of ``platform`` and calendar month: spend, impressions, clicks and
    conversions (impressions of every kind, charged or not), by advertiser then month."""
    s, im, a, c = t.spend.c, t.impressions.c, t.advertisers.c, t.campaigns.c
    on_platform = and_(a.id == s.advertiser, a.platform == platform)
    with translate(StoreError, "summing spend per advertiser and month"), engine.connect() as conn:
        names = {
            row.id: row.name
            for row in conn.execute(select(a.id, a.name).where(a.platform == platform))
        }
        spent = conn.execute(
            select(s.advertiser, s.day, func.sum(s.amount_micros))
            .join(t.advertisers, on_platform)
            .group_by(s.advertiser, s.day)
        ).all()
        shown = conn.execute(
            select(
                im.advertiser,
                im.day,
                im.campaign_id,
                func.count(),
                func.sum(case((im.clicked.is_(True), 1), else_=0)),
                func.sum(case((im.converted.is_(True), 1), else_=0)),
            )
            .where(im.platform == platform)
            .group_by(im.advertiser, im.day, im.campaign_id)
        ).all()
        partner = set(conn.execute(select(c.id).where(c.partner_data.is_(True))).scalars().all())
    months: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for advertiser, day, amount in spent:
        months[(advertiser, month_of(_day(day)))][0] += int(amount)
    for advertiser, day, campaign, count, clicks, conversions in shown:
        sums = months[(advertiser, month_of(_day(day)))]
        sums[1] += int(count)
        sums[2] += int(clicks or 0)
        sums[3] += int(conversions or 0)
        if campaign in partner:
            sums[4] = 1
    return [
        AdvertiserMonth(
            advertiser,
            names.get(advertiser, advertiser),
            month,
            spend=sums[0],
            impressions=sums[1],
            clicks=sums[2],
            conversions=sums[3],
            partner_data=bool(sums[4]),
        )
        for (advertiser, month), sums in sorted(months.items())
    ]


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


__all__ = [
    "AdvertiserMonth",
    "Invoice",
    "InvoiceLine",
    "SpendBook",
    "SpendDay",
    "advertiser_months",
    "month_days",
    "month_of",
]
