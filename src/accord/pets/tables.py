"""The privacy budget's tables in the Accord store (created by migration ``0004_pets``).

* ``privacy_budgets``: one row per person (by the party that holds their data and that party's id
  for them): how much privacy loss they allow in total, across every partnership, and how much
  queries have spent. Amounts are whole numbers of small units, so that sums are exact and the
  check ``spent + cost <= total`` in SQL means what it says: epsilon in millionths
  (:data:`EPSILON_UNIT`), delta in 10**-15 (:data:`DELTA_UNIT`).
* ``privacy_spends``: one row per differentially private query that spent budget: who asked, under
  which agreement and clause, the mechanism, what each person was charged, how many people, and
  the ledger index of its entry.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, CheckConstraint, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from accord.store.engine import Base
from accord.store.types import UTCDateTime

EPSILON_UNIT = 10**6
"""Stored epsilon amounts are in millionths."""
DELTA_UNIT = 10**15
"""Stored delta amounts are in units of 10**-15."""


class PrivacyBudgetRow(Base):
    """A person's privacy budget across all partnerships, and what has been spent of it."""

    __tablename__ = "privacy_budgets"

    party: Mapped[str] = mapped_column(String, primary_key=True)
    person_id: Mapped[str] = mapped_column(String, primary_key=True)
    epsilon_total: Mapped[int] = mapped_column(BigInteger)
    epsilon_spent: Mapped[int] = mapped_column(BigInteger, default=0)
    delta_total: Mapped[int] = mapped_column(BigInteger)
    delta_spent: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        # The store itself refuses a row that is overspent, whatever code writes it.
        CheckConstraint(
            "epsilon_spent >= 0 AND epsilon_spent <= epsilon_total", name="ck_budget_epsilon"
        ),
        CheckConstraint("delta_spent >= 0 AND delta_spent <= delta_total", name="ck_budget_delta"),
    )


class PrivacySpendRow(Base):
    """One query that spent budget of every person whose data it read."""

    __tablename__ = "privacy_spends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query_id: Mapped[str] = mapped_column(String, unique=True)
    party: Mapped[str] = mapped_column(String)
    recipient: Mapped[str] = mapped_column(String)
    agreement: Mapped[str | None] = mapped_column(String)
    clause: Mapped[str | None] = mapped_column(String)
    mechanism: Mapped[str] = mapped_column(String)
    epsilon: Mapped[int] = mapped_column(BigInteger)
    delta: Mapped[int] = mapped_column(BigInteger)
    people: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


privacy_budgets = cast(Table, PrivacyBudgetRow.__table__)
privacy_spends = cast(Table, PrivacySpendRow.__table__)
