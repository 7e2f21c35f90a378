"""A privacy budget per person, across every partnership.

AWS Clean Rooms and Snowflake keep a differential-privacy budget per collaboration: a person whose
data sits in ten collaborations can lose ten budgets' worth of privacy. Accord keeps one budget per
person, whoever asks and under whichever agreement: every differentially private query charges
each person whose data it reads, and a query that would take anyone past their total is refused
whole, with a reason. Privacy loss adds up across queries by basic sequential composition (Dwork
and Roth, *The Algorithmic Foundations of Differential Privacy*, 2014, Theorem 3.16): epsilons
add, deltas add.

A spend is atomic and can never take a budget below zero, however many queries run at once:

* every row to be charged is locked first, in one order (``SELECT … FOR UPDATE`` ordered by person
  on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite, which holds the database's one write lock), so two
  spends cannot deadlock;
* the charge itself is a conditional ``UPDATE … WHERE spent + cost <= total``, and the spend
  commits only if it changed one row per person; otherwise it is rolled back and refused;
* the table refuses an overspent row by a ``CHECK`` constraint, whatever code writes to it.

A clause may cap what its own answers spend (its ``privacy_budget``: :attr:`Charge.cap`). The
spends table says under which agreement and clause each query spent, so the clause's total is read
from it, in the spend's own transaction (behind ``BEGIN IMMEDIATE`` on SQLite, and a transaction
lock on the clause on PostgreSQL, taken before any person's row): a charge that would take the
clause past its cap is refused whole, like one that would take a person past theirs. The total is
counted as though every answer read everyone, so no person's spend under the clause can exceed it.

Every spend, and every refusal, is a :class:`~accord.ledger.entries.BudgetEntry` in the ledger;
a spend names (pseudonymously) everyone it charged, so each person can find their spends.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Connection, Engine, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from accord.errors import AccordError, InvalidInput, StoreError, translate
from accord.ledger.entries import BudgetEntry
from accord.ledger.log import Ledger, Receipt
from accord.pets.tables import DELTA_UNIT, EPSILON_UNIT, privacy_budgets, privacy_spends
from accord.service import person_refs

DEFAULT_EPSILON = 10.0
"""Each person's total epsilon unless set otherwise: across all partnerships, for all time."""
DEFAULT_DELTA = 1e-6
"""Each person's total delta unless set otherwise."""

BUDGET_RULE = "pets:privacy-budget"

# Bound parameters per statement: well under SQLite's and PostgreSQL's limits.
_CHUNK = 900


def epsilon_units(epsilon: float) -> int:
    """Epsilon in stored units (millionths), rounded up: a charge is never less than asked."""
    return math.ceil(Decimal(repr(epsilon)) * EPSILON_UNIT)


def delta_units(delta: float) -> int:
    """Delta in stored units (10**-15), rounded up."""
    return math.ceil(Decimal(repr(delta)) * DELTA_UNIT)


@dataclass(frozen=True, slots=True)
class Cost:
    """What one query charges each person it reads: epsilon, and delta for approximate DP."""

    epsilon: float
    delta: float = 0.0
    mechanism: str = "laplace"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise InvalidInput(f"epsilon must be a positive number, not {self.epsilon!r}")
        if not (math.isfinite(self.delta) and 0 <= self.delta < 1):
            raise InvalidInput(f"delta must be at least 0 and below 1, not {self.delta!r}")


@dataclass(frozen=True, slots=True)
class Charge:
    """A query's charge: whose budget (a party's people, by its ids), how much, and why."""

    party: str
    people: Collection[str]
    cost: Cost
    recipient: str
    description: str
    agreement: str | None = None
    clause: str | None = None
    purpose: str | None = None
    categories: tuple[str, ...] = ()
    cap: float | None = None
    """The most epsilon the charge's clause may spend per person in all (its ``privacy_budget``),
    counting every earlier spend under the same agreement and clause, or ``None``."""

    def __post_init__(self) -> None:
        if self.cap is not None and (self.agreement is None or self.clause is None):
            raise InvalidInput(
                "a charge capped by its clause's budget names the agreement and clause"
            )
        if self.cap is not None and not (math.isfinite(self.cap) and self.cap > 0):
            raise InvalidInput(f"a clause's privacy budget is a positive number, not {self.cap!r}")


@dataclass(frozen=True, slots=True)
class Spend:
    """A charge that went through: its id, how many people paid, and its ledger receipt."""

    query_id: str
    people: int
    receipt: Receipt


@dataclass(frozen=True, slots=True)
class Remaining:
    """What is left of one person's budget."""

    epsilon: float
    delta: float


class BudgetExceeded(AccordError):
    """A query would take some people past their privacy budget; nothing was charged or released."""

    exit_code = 3

    def __init__(self, message: str, *, short: int, receipt: Receipt | None) -> None:
        self.short = short
        self.receipt = receipt
        super().__init__(message)


class PrivacyBudgets:
    """Every person's privacy budget in the Accord store, and the ledger that records spends."""

    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        *,
        default_epsilon: float = DEFAULT_EPSILON,
        default_delta: float = DEFAULT_DELTA,
    ) -> None:
        Cost(default_epsilon, default_delta)  # the same checks as a charge
        self.engine = engine
        self.ledger = ledger
        self.default_epsilon = default_epsilon
        self.default_delta = default_delta
        self._sqlite = engine.dialect.name == "sqlite"

    # -- reading -----------------------------------------------------------------------------------

    def remaining(self, party: str, person: str) -> Remaining:
        """What ``person`` (at ``party``) has left; the default budget if nothing was spent."""
        b = privacy_budgets.c
        query = select(b.epsilon_total - b.epsilon_spent, b.delta_total - b.delta_spent).where(
            b.party == party, b.person_id == person
        )
        with translate(StoreError, "reading a privacy budget"), self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return Remaining(self.default_epsilon, self.default_delta)
        return Remaining(int(row[0]) / EPSILON_UNIT, int(row[1]) / DELTA_UNIT)

    def clause_spent(self, party: str, agreement: str, clause: str) -> float:
        """The epsilon the answers under ``clause`` of ``agreement`` have spent of ``party``'s
        people, counted as though each read everyone (what :attr:`Charge.cap` is held to)."""
        with translate(StoreError, "reading a clause's privacy spend"), self.engine.connect() as c:
            return _clause_units(c, party, agreement, clause) / EPSILON_UNIT

    # -- writing -----------------------------------------------------------------------------------

    def set_total(
        self, party: str, people: Collection[str], *, epsilon: float, delta: float = 0.0
    ) -> None:
        """Give ``people`` a total budget (what they already spent still counts against it)."""
        if not (math.isfinite(epsilon) and epsilon >= 0 and math.isfinite(delta) and delta >= 0):
            raise InvalidInput(f"a budget is non-negative: epsilon {epsilon!r}, delta {delta!r}")
        self._ensure(party, people)
        b = privacy_budgets.c
        e, d = epsilon_units(epsilon), delta_units(delta)
        with self._transaction("setting privacy budgets") as conn:
            for chunk in _chunks(sorted(set(people))):
                done = conn.execute(
                    update(privacy_budgets)
                    .where(b.party == party, b.person_id.in_(chunk))
                    .where(b.epsilon_spent <= e, b.delta_spent <= d)
                    .values(epsilon_total=e, delta_total=d, updated_at=datetime.now(UTC))
                )
                if done.rowcount != len(chunk):
                    raise InvalidInput(
                        f"{len(chunk) - done.rowcount} of these people already spent more than "
                        f"epsilon {epsilon} / delta {delta}: a budget cannot shrink below its spend"
                    )

    def spend(self, charge: Charge) -> Spend:
        """Charge every person in ``charge``, all or none; refused if anyone would overspend.

        Returns once the spend is committed and its ledger entry durable. Raises
        :class:`BudgetExceeded` (logged in the ledger too) when anyone's budget is short.
        """
        (spent,) = self.spend_together([charge])
        return spent

    def spend_together(self, charges: Sequence[Charge]) -> tuple[Spend, ...]:
        """Make several charges (one query over several parties' people) all or none.

        In one transaction: if anyone in any charge would overspend, nobody in any of them is
        charged. Rows are locked in one order (party, then person), so spends over overlapping
        people queue rather than deadlock. Returns the spends in the order of ``charges`` once
        they are committed and their ledger entries durable.
        """
        plans = [
            (charge, sorted({str(p) for p in charge.people}), uuid.uuid4().hex)
            for charge in charges
        ]
        for charge, people, _ in plans:
            if people:
                self._ensure(charge.party, people)
        shorts: list[tuple[Charge, list[str], int, str | None]] = []
        with self._transaction("spending privacy budget") as conn:
            self._lock_clauses(conn, charges)
            for charge, people, query_id in sorted(plans, key=lambda plan: plan[0].party):
                over = self._over_cap(conn, charge)
                short = len(people) if over else self._charge(conn, charge, people)
                if short or over:
                    shorts.append((charge, people, short, over))
                else:
                    self._record(conn, charge, people, query_id)
            if shorts:
                conn.rollback()
        if shorts:
            raise self._refuse([charge for charge, _, _ in plans], shorts)
        receipts = self.ledger.append(
            [
                self._entry(
                    charge,
                    f"{charge.recipient} spent epsilon {_text(charge.cost.epsilon)}"
                    f"{f' and delta {_text(charge.cost.delta)}' if charge.cost.delta else ''} of "
                    f"the privacy budget of each of {len(people)} people ({charge.cost.mechanism} "
                    f"noise): {charge.description}",
                    people=len(people),
                    about=person_refs(charge.party, people),
                    spent=True,
                )
                for charge, people, _ in plans
            ]
        )
        with self._transaction("recording a spend's ledger entry") as conn:
            for (_, _, query_id), receipt in zip(plans, receipts, strict=True):
                conn.execute(
                    update(privacy_spends)
                    .where(privacy_spends.c.query_id == query_id)
                    .values(ledger_index=receipt.index)
                )
        return tuple(
            Spend(query_id, len(people), receipt)
            for (_, people, query_id), receipt in zip(plans, receipts, strict=True)
        )

    def _charge(self, conn: Connection, charge: Charge, people: Sequence[str]) -> int:
        """Charge ``people`` inside the spend's transaction; how many were short of budget."""
        b = privacy_budgets.c
        e, d = epsilon_units(charge.cost.epsilon), delta_units(charge.cost.delta)
        changed = 0
        for chunk in _chunks(people):
            mine = and_(b.party == charge.party, b.person_id.in_(chunk))
            if not self._sqlite:
                # Lock in person order: two spends over the same people queue, not deadlock.
                conn.execute(
                    select(b.person_id).where(mine).order_by(b.person_id).with_for_update()
                )
            changed += conn.execute(
                update(privacy_budgets)
                .where(mine)
                .where(b.epsilon_spent + e <= b.epsilon_total)
                .where(b.delta_spent + d <= b.delta_total)
                .values(
                    epsilon_spent=b.epsilon_spent + e,
                    delta_spent=b.delta_spent + d,
                    updated_at=datetime.now(UTC),
                )
            ).rowcount
        return len(people) - changed

    def _lock_clauses(self, conn: Connection, charges: Sequence[Charge]) -> None:
        """On PostgreSQL, hold a transaction lock on each capped clause (in one order, before any
        person's row) so that two spends under one clause read its total one after the other."""
        if self._sqlite:
            return  # BEGIN IMMEDIATE already holds the database's one write lock
        keys = sorted({_clause_key(c) for c in charges if c.cap is not None})
        for key in keys:
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))

    @staticmethod
    def _over_cap(conn: Connection, charge: Charge) -> str | None:
        """Why ``charge`` would take its clause past its cap, or ``None`` if it would not."""
        if charge.cap is None or charge.agreement is None or charge.clause is None:
            return None
        spent = _clause_units(conn, charge.party, charge.agreement, charge.clause)
        if spent + epsilon_units(charge.cost.epsilon) <= epsilon_units(charge.cap):
            return None
        return (
            f"clause {charge.clause} of agreement {charge.agreement} may spend epsilon "
            f"{_text(charge.cap)} of each person's privacy budget in all; its answers have spent "
            f"{_text(spent / EPSILON_UNIT)}, and this one would spend "
            f"{_text(charge.cost.epsilon)} more"
        )

    @staticmethod
    def _record(conn: Connection, charge: Charge, people: Sequence[str], query_id: str) -> None:
        cost = charge.cost
        conn.execute(
            privacy_spends.insert().values(
                query_id=query_id,
                party=charge.party,
                recipient=charge.recipient,
                agreement=charge.agreement,
                clause=charge.clause,
                mechanism=cost.mechanism,
                epsilon=epsilon_units(cost.epsilon),
                delta=delta_units(cost.delta),
                people=len(people),
                description=charge.description,
                at=datetime.now(UTC),
            )
        )

    def spends(self, party: str) -> int:
        """How many queries have spent the budgets of ``party``'s people."""
        query = select(func.count()).where(privacy_spends.c.party == party)
        with translate(StoreError, "counting spends"), self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- helpers -----------------------------------------------------------------------------------

    def _refuse(
        self,
        charges: Sequence[Charge],
        shorts: Sequence[tuple[Charge, list[str], int, str | None]],
    ) -> BudgetExceeded:
        """The refusal of a spend, logged once for each charge that was short."""
        short = sum(n for _, _, n, _ in shorts)
        reasons = []
        for charge, people, n, over in shorts:
            cost = charge.cost
            why = over or (
                f"{n} of the {len(people)} people of {charge.party} this query reads "
                f"{'has' if n == 1 else 'have'} less than epsilon {_text(cost.epsilon)}"
                f"{f' or delta {_text(cost.delta)}' if cost.delta else ''} of privacy budget "
                "left (budgets are per person, across all partnerships)"
            )
            reasons.append(
                f"Refused: {why}; nothing was charged or released"
                + (f" for any of the {len(charges)} parties" if len(charges) > 1 else "")
            )
        receipt: Receipt | None
        try:
            # The refusal names nobody: whose budget ran out is itself about them.
            receipts = self.ledger.append(
                [
                    self._entry(charge, reason, people=len(people), about=(), spent=False)
                    for (charge, people, _, _), reason in zip(shorts, reasons, strict=True)
                ]
            )
            receipt = receipts[0]
        except AccordError:
            receipt = None
        return BudgetExceeded("; ".join(reasons), short=short, receipt=receipt)

    @staticmethod
    def _entry(
        charge: Charge, reason: str, *, people: int, about: tuple[str, ...], spent: bool
    ) -> BudgetEntry:
        return BudgetEntry(
            agreement=charge.agreement,
            clause=charge.clause,
            purpose=charge.purpose,
            categories=tuple(sorted(charge.categories)),
            reason=reason,
            people=people,
            about=about,
            recipient=charge.recipient,
            mechanism=charge.cost.mechanism,
            epsilon=_text(charge.cost.epsilon),
            delta=_text(charge.cost.delta),
            spent=spent,
        )

    def _ensure(self, party: str, people: Collection[str]) -> None:
        """Give every person without a budget row the default budget (an idempotent insert)."""
        now = datetime.now(UTC)
        e, d = epsilon_units(self.default_epsilon), delta_units(self.default_delta)
        insert = sqlite.insert if self._sqlite else postgresql.insert
        with self._transaction("creating privacy budgets") as conn:
            for chunk in _chunks(sorted(set(people)), size=_CHUNK // 8):
                rows = [
                    {
                        "party": party,
                        "person_id": p,
                        "epsilon_total": e,
                        "epsilon_spent": 0,
                        "delta_total": d,
                        "delta_spent": 0,
                        "updated_at": now,
                    }
                    for p in chunk
                ]
                conn.execute(insert(privacy_budgets).values(rows).on_conflict_do_nothing())

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Connection]:
        with translate(StoreError, doing), self.engine.connect() as conn:
            if self._sqlite:
                # Take the write lock before the first read, so no spend works from a stale view.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            if conn.in_transaction():
                conn.commit()


def _clause_key(charge: Charge) -> str:
    return f"accord:privacy-spends:{charge.party}:{charge.agreement}:{charge.clause}"


def _clause_units(conn: Connection, party: str, agreement: str, clause: str) -> int:
    """The epsilon units spent under ``clause`` of ``agreement`` of ``party``'s people."""
    s = privacy_spends.c
    query = select(func.coalesce(func.sum(s.epsilon), 0)).where(
        s.party == party, s.agreement == agreement, s.clause == clause
    )
    return int(conn.execute(query).scalar_one())


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _text(amount: float) -> str:
    """An amount as short decimal text (``0.5``, ``1e-09``)."""
    return repr(float(amount))
