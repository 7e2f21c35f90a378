"""The ad platform's tables in the Accord store (created by migration ``0012_ads``).

* ``ads_advertisers``: advertiser accounts, each on one platform (a party), maybe a party itself.
* ``ads_audiences``, ``ads_audience_members``: lists of people an advertiser targets; an audience
  whose ``provider`` is another party is built from that party's data, and each member row may
  keep the person's id there (``source_person``), so an opt-out the provider records for them
  counts too.
* ``ads_campaigns`` with ``ads_campaign_audiences`` and ``ads_creatives``: what is bought.
* ``ads_campaign_revisions``: per platform, a count of the writes to its campaigns (added, paused,
  resumed; moved in the same transaction as each, by migration ``0020_campaign_revisions``), so
  that an ad server knows at once when the campaigns it serves changed.
* ``ads_profiles``: the platform's own signals about each person (age band, derived interests);
  where they live comes from the store's ``people``.
* ``ads_impressions``: every ad shown, with the predicted click-through rate, the price, whether it
  was clicked and led to a conversion, and (in a simulation) the true probabilities of both.
* ``ads_spend``: one row per charge (an impression of a CPM campaign, a click of a CPC one),
  append-only: nothing updates or deletes a row.
* ``ads_spend_days``: each campaign's charges summed per day once the day is closed, with the
  ledger index of the day's entry.
* ``ads_invoices``, ``ads_invoice_lines``: monthly invoices per advertiser, a line per campaign.

Amounts are whole micros (:data:`accord.ads.model.MICROS`) in 64-bit integers.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from accord.store.engine import Base
from accord.store.types import UTCDateTime

# A 64-bit key that SQLite still numbers by itself (only INTEGER PRIMARY KEY is its rowid).
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


class AdvertiserRow(Base):
    """An advertiser's account on a platform."""

    __tablename__ = "ads_advertisers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    platform: Mapped[str] = mapped_column(
        String, ForeignKey("parties.id", name="fk_ads_advertisers_platform")
    )
    party: Mapped[str | None] = mapped_column(
        String, ForeignKey("parties.id", name="fk_ads_advertisers_party"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AudienceRow(Base):
    """A list of people an advertiser targets; ``provider`` is whose data it is built from."""

    __tablename__ = "ads_audiences"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    advertiser: Mapped[str] = mapped_column(
        String(64), ForeignKey("ads_advertisers.id", name="fk_ads_audiences_advertiser")
    )
    name: Mapped[str] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(
        String, ForeignKey("parties.id", name="fk_ads_audiences_provider"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AudienceMemberRow(Base):
    """A person in an audience, by their id at the platform (and at the provider, if known)."""

    __tablename__ = "ads_audience_members"

    audience_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person: Mapped[str] = mapped_column(String, primary_key=True)
    source_person: Mapped[str | None] = mapped_column(String, nullable=True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["audience_id"],
            ["ads_audiences.id"],
            name="fk_ads_audience_members_audience",
            ondelete="CASCADE",
        ),
        # An ad request looks the person's audiences up by their id.
        Index("ix_ads_audience_members_person", "person"),
    )


class CampaignRow(Base):
    """A campaign; targeting lists are JSON arrays of text (sorted)."""

    __tablename__ = "ads_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    advertiser: Mapped[str] = mapped_column(
        String(64), ForeignKey("ads_advertisers.id", name="fk_ads_campaigns_advertiser")
    )
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    bid_strategy: Mapped[str] = mapped_column(String(8))
    bid_micros: Mapped[int] = mapped_column(BigInteger)
    daily_budget_micros: Mapped[int] = mapped_column(BigInteger)
    lifetime_budget_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    frequency_cap: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    hours: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Day-parting: a JSON array of hours of the week (0 is Monday 00:00 UTC); null: always."""
    regions: Mapped[str] = mapped_column(Text)
    age_bands: Mapped[str] = mapped_column(Text)
    interests: Mapped[str] = mapped_column(Text)
    partner_data: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("bid_micros > 0", name="ck_ads_campaigns_bid"),
        CheckConstraint("daily_budget_micros > 0", name="ck_ads_campaigns_daily"),
        CheckConstraint(
            "lifetime_budget_micros IS NULL OR lifetime_budget_micros > 0",
            name="ck_ads_campaigns_lifetime",
        ),
        CheckConstraint("frequency_cap > 0", name="ck_ads_campaigns_cap"),
        Index("ix_ads_campaigns_advertiser", "advertiser"),
    )


class CampaignRevisionRow(Base):
    """How many times a platform's campaigns were written (added, paused, resumed)."""

    __tablename__ = "ads_campaign_revisions"

    platform: Mapped[str] = mapped_column(String, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)


class CampaignAudienceRow(Base):
    """An audience a campaign includes (or, ``excluded``, keeps out)."""

    __tablename__ = "ads_campaign_audiences"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audience_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    excluded: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        ForeignKeyConstraint(
            ["campaign_id"],
            ["ads_campaigns.id"],
            name="fk_ads_campaign_audiences_campaign",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["audience_id"], ["ads_audiences.id"], name="fk_ads_campaign_audiences_audience"
        ),
    )


class CreativeRow(Base):
    """One ad of a campaign."""

    __tablename__ = "ads_creatives"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    headline: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        ForeignKeyConstraint(
            ["campaign_id"],
            ["ads_campaigns.id"],
            name="fk_ads_creatives_campaign",
            ondelete="CASCADE",
        ),
    )


class ProfileRow(Base):
    """The platform's own signals about one of its people."""

    __tablename__ = "ads_profiles"

    platform: Mapped[str] = mapped_column(String, primary_key=True)
    person: Mapped[str] = mapped_column(String, primary_key=True)
    age_band: Mapped[str] = mapped_column(String(8))
    interests: Mapped[str] = mapped_column(Text)
    """A JSON array of the interests the platform derived from its own data."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ImpressionRow(Base):
    """An ad shown to a person, and what followed."""

    __tablename__ = "ads_impressions"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(String)
    person: Mapped[str] = mapped_column(String)
    campaign_id: Mapped[int] = mapped_column(Integer)
    advertiser: Mapped[str] = mapped_column(String(64))
    creative_id: Mapped[str] = mapped_column(String(64))
    slot: Mapped[int] = mapped_column(SmallInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    day: Mapped[date] = mapped_column(Date)
    billing: Mapped[str] = mapped_column(String(8))
    price_micros: Mapped[int] = mapped_column(BigInteger)
    """The auction's price per billable event (click or impression)."""
    predicted_ctr: Mapped[float] = mapped_column(Float)
    p_click: Mapped[float | None] = mapped_column(Float, nullable=True)
    """The true probability of a click, where it is known (a simulation)."""
    clicked: Mapped[bool] = mapped_column(Boolean)
    p_conversion: Mapped[float | None] = mapped_column(Float, nullable=True)
    """The true probability of a conversion after a click, where it is known."""
    converted: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_ads_impressions_advertiser_day", "advertiser", "day"),
        Index("ix_ads_impressions_person", "platform", "person"),
    )


class SpendRow(Base):
    """One charge: append-only."""

    __tablename__ = "ads_spend"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    advertiser: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    day: Mapped[date] = mapped_column(Date)
    event: Mapped[str] = mapped_column(String(16))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    request_id: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        CheckConstraint("amount_micros >= 0", name="ck_ads_spend_amount"),
        CheckConstraint("event IN ('impression', 'click')", name="ck_ads_spend_event"),
        Index("ix_ads_spend_advertiser_day", "advertiser", "day"),
        Index("ix_ads_spend_campaign_day", "campaign_id", "day"),
    )


class SpendDayRow(Base):
    """A campaign's charges of one closed day, and the ledger entry that holds them."""

    __tablename__ = "ads_spend_days"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    advertiser: Mapped[str] = mapped_column(String(64))
    impressions: Mapped[int] = mapped_column(BigInteger)
    clicks: Mapped[int] = mapped_column(BigInteger)
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class InvoiceRow(Base):
    """An advertiser's invoice for one calendar month."""

    __tablename__ = "ads_invoices"

    id: Mapped[str] = mapped_column(String(96), primary_key=True)
    advertiser: Mapped[str] = mapped_column(
        String(64), ForeignKey("ads_advertisers.id", name="fk_ads_invoices_advertiser")
    )
    month: Mapped[str] = mapped_column(String(7))
    total_micros: Mapped[int] = mapped_column(BigInteger)
    charges: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("advertiser", "month", name="uq_ads_invoices_month"),)


class InvoiceLineRow(Base):
    """One campaign's part of an invoice."""

    __tablename__ = "ads_invoice_lines"

    invoice_id: Mapped[str] = mapped_column(String(96), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    impressions: Mapped[int] = mapped_column(BigInteger)
    """Impressions charged (CPM)."""
    clicks: Mapped[int] = mapped_column(BigInteger)
    """Clicks charged (CPC)."""
    amount_micros: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        ForeignKeyConstraint(
            ["invoice_id"],
            ["ads_invoices.id"],
            name="fk_ads_invoice_lines_invoice",
            ondelete="CASCADE",
        ),
    )


def _table(row: type[Base]) -> Table:
    return cast(Table, row.__table__)


advertisers = _table(AdvertiserRow)
audiences = _table(AudienceRow)
audience_members = _table(AudienceMemberRow)
campaigns = _table(CampaignRow)
campaign_revisions = _table(CampaignRevisionRow)
campaign_audiences = _table(CampaignAudienceRow)
creatives = _table(CreativeRow)
profiles = _table(ProfileRow)
impressions = _table(ImpressionRow)
spend = _table(SpendRow)
spend_days = _table(SpendDayRow)
invoices = _table(InvoiceRow)
invoice_lines = _table(InvoiceLineRow)
