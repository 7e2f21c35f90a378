"""The ad platform: advertisers, audiences, campaigns, profiles, impressions, spend, invoices.

See :mod:`accord.ads.tables` for what each table holds.

Revision ID: 0012_ads
Revises: 0010_erasure
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_ads"
down_revision: str | None = "0010_erasure"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of accord.store.types.UTCDateTime: timestamptz on PostgreSQL, UTC text on SQLite.
INSTANT = sa.DateTime(timezone=True).with_variant(sa.String(27), "sqlite")
# Frozen copy of accord.ads.tables.ROW_ID: 64 bits, numbered by SQLite itself as its rowid.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ads_advertisers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("party", sa.String(), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.ForeignKeyConstraint(["platform"], ["parties.id"], name="fk_ads_advertisers_platform"),
        sa.ForeignKeyConstraint(["party"], ["parties.id"], name="fk_ads_advertisers_party"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "ads_audiences",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("advertiser", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(), nullable=True),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.ForeignKeyConstraint(
            ["advertiser"], ["ads_advertisers.id"], name="fk_ads_audiences_advertiser"
        ),
        sa.ForeignKeyConstraint(["provider"], ["parties.id"], name="fk_ads_audiences_provider"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "ads_audience_members",
        sa.Column("audience_id", sa.String(length=64), nullable=False),
        sa.Column("person", sa.String(), nullable=False),
        sa.Column("source_person", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["ads_audiences.id"],
            name="fk_ads_audience_members_audience",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("audience_id", "person"),
    )
    op.create_index("ix_ads_audience_members_person", "ads_audience_members", ["person"])
    op.create_table(
        "ads_campaigns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("advertiser", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bid_strategy", sa.String(length=8), nullable=False),
        sa.Column("bid_micros", sa.BigInteger(), nullable=False),
        sa.Column("daily_budget_micros", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_budget_micros", sa.BigInteger(), nullable=True),
        sa.Column("frequency_cap", sa.Integer(), nullable=False),
        sa.Column("starts_at", INSTANT, nullable=False),
        sa.Column("ends_at", INSTANT, nullable=True),
        sa.Column("hours", sa.Text(), nullable=True),
        sa.Column("regions", sa.Text(), nullable=False),
        sa.Column("age_bands", sa.Text(), nullable=False),
        sa.Column("interests", sa.Text(), nullable=False),
        sa.Column("partner_data", sa.Boolean(), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.CheckConstraint("bid_micros > 0", name="ck_ads_campaigns_bid"),
        sa.CheckConstraint("daily_budget_micros > 0", name="ck_ads_campaigns_daily"),
        sa.CheckConstraint(
            "lifetime_budget_micros IS NULL OR lifetime_budget_micros > 0",
            name="ck_ads_campaigns_lifetime",
        ),
        sa.CheckConstraint("frequency_cap > 0", name="ck_ads_campaigns_cap"),
        sa.ForeignKeyConstraint(
            ["advertiser"], ["ads_advertisers.id"], name="fk_ads_campaigns_advertiser"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ads_campaigns_advertiser", "ads_campaigns", ["advertiser"])
    op.create_table(
        "ads_campaign_audiences",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("audience_id", sa.String(length=64), nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["ads_campaigns.id"],
            name="fk_ads_campaign_audiences_campaign",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["audience_id"], ["ads_audiences.id"], name="fk_ads_campaign_audiences_audience"
        ),
        sa.PrimaryKeyConstraint("campaign_id", "audience_id"),
    )
    op.create_table(
        "ads_creatives",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("headline", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["ads_campaigns.id"],
            name="fk_ads_creatives_campaign",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "id"),
    )
    op.create_table(
        "ads_profiles",
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("person", sa.String(), nullable=False),
        sa.Column("age_band", sa.String(length=8), nullable=False),
        sa.Column("interests", sa.Text(), nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("platform", "person"),
    )
    op.create_table(
        "ads_impressions",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("person", sa.String(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("advertiser", sa.String(length=64), nullable=False),
        sa.Column("creative_id", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("at", INSTANT, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("billing", sa.String(length=8), nullable=False),
        sa.Column("price_micros", sa.BigInteger(), nullable=False),
        sa.Column("predicted_ctr", sa.Float(), nullable=False),
        sa.Column("p_click", sa.Float(), nullable=True),
        sa.Column("clicked", sa.Boolean(), nullable=False),
        sa.Column("p_conversion", sa.Float(), nullable=True),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ads_impressions_advertiser_day", "ads_impressions", ["advertiser", "day"])
    op.create_index("ix_ads_impressions_person", "ads_impressions", ["platform", "person"])
    op.create_table(
        "ads_spend",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("advertiser", sa.String(length=64), nullable=False),
        sa.Column("at", INSTANT, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.CheckConstraint("amount_micros >= 0", name="ck_ads_spend_amount"),
        sa.CheckConstraint("event IN ('impression', 'click')", name="ck_ads_spend_event"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ads_spend_advertiser_day", "ads_spend", ["advertiser", "day"])
    op.create_index("ix_ads_spend_campaign_day", "ads_spend", ["campaign_id", "day"])
    op.create_table(
        "ads_spend_days",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("advertiser", sa.String(length=64), nullable=False),
        sa.Column("impressions", sa.BigInteger(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", "day"),
    )
    op.create_table(
        "ads_invoices",
        sa.Column("id", sa.String(length=96), nullable=False),
        sa.Column("advertiser", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("total_micros", sa.BigInteger(), nullable=False),
        sa.Column("charges", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", INSTANT, nullable=False),
        sa.ForeignKeyConstraint(
            ["advertiser"], ["ads_advertisers.id"], name="fk_ads_invoices_advertiser"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("advertiser", "month", name="uq_ads_invoices_month"),
    )
    op.create_table(
        "ads_invoice_lines",
        sa.Column("invoice_id", sa.String(length=96), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("impressions", sa.BigInteger(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["ads_invoices.id"],
            name="fk_ads_invoice_lines_invoice",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("invoice_id", "campaign_id"),
    )


def downgrade() -> None:
    op.drop_table("ads_invoice_lines")
    op.drop_table("ads_invoices")
    op.drop_table("ads_spend_days")
    op.drop_index("ix_ads_spend_campaign_day", table_name="ads_spend")
    op.drop_index("ix_ads_spend_advertiser_day", table_name="ads_spend")
    op.drop_table("ads_spend")
    op.drop_index("ix_ads_impressions_person", table_name="ads_impressions")
    op.drop_index("ix_ads_impressions_advertiser_day", table_name="ads_impressions")
    op.drop_table("ads_impressions")
    op.drop_table("ads_profiles")
    op.drop_table("ads_creatives")
    op.drop_table("ads_campaign_audiences")
    op.drop_index("ix_ads_campaigns_advertiser", table_name="ads_campaigns")
    op.drop_table("ads_campaigns")
    op.drop_index("ix_ads_audience_members_person", table_name="ads_audience_members")
    op.drop_table("ads_audience_members")
    op.drop_table("ads_audiences")
    op.drop_table("ads_advertisers")
