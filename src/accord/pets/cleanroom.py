"""A clean room: parties' data, fetched through the gateway, queried only as a rule allows.

    fetch   each table through :meth:`accord.gateway.Gateway.exchange` (a record read, so the
            policy, the people's consents and the law decide whose rows come in; the release is in
            the ledger), into an in-memory DuckDB database that nothing else can reach
    check   the query against the rule with sqlglot (:mod:`accord.pets.checks`); refused queries
            say which check failed and why
    spend   with differential privacy, every person whose data the query reads pays the rule's
            epsilon (and delta) from their budget across all partnerships
            (:mod:`accord.pets.budget`); the spend is durable in the ledger before anything is
            released, and a query that would overspend anyone is refused whole
    run     the rebuilt query on the room's engine (DuckDB, or Spark: see
            :mod:`accord.pets.engines`), which returns exact aggregates only: each output row
            counts distinct people and rows below the minimum are dropped; with differential
            privacy, rows are bounded per person, a row shows only if its count of people (each
            person counted in one group, chosen at random among their rows) plus noise reaches a
            threshold of at least the minimum (OpenDP's threshold mechanism), and the aggregates
            get OpenDP noise in the room (:mod:`accord.pets.dp`), outside the engine
    log     the result as a release in the ledger, durable before it is returned

Only the query's result leaves the room; its rows stay in the DuckDB database (and the engine's
session), closed with the room.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

from accord.agreements import Granularity
from accord.errors import ConfigError, InvalidInput
from accord.gateway import Exchange, Gateway, GatewayError, Release
from accord.ledger.entries import ReleaseEntry
from accord.ledger.log import Ledger, Receipt
from accord.pets import dp
from accord.pets.budget import Charge, Cost, PrivacyBudgets, Spend
from accord.pets.checks import (
    COUNTED,
    PEOPLE_COLUMN,
    RANK_COLUMN,
    Checked,
    Metric,
    Observed,
    QueryRefused,
    avg_count,
    check_query,
)
from accord.pets.engines import DuckDBEngine, QueryEngine
from accord.pets.engines import duck as _duck
from accord.pets.engines import quote as _quote
from accord.pets.rules import AnalysisRule, RuleKind

__all__ = ["CleanRoom", "QueryRefused", "Result", "Table", "answer"]

_NULL = "\\N"


@dataclass(frozen=True, slots=True)
class Table:
    """A table in the room: whose data it is, its person column, and where it came from."""

    name: str
    party: str
    person: str
    columns: tuple[str, ...]
    rows: int
    agreement: str | None = None
    clause: str | None = None
    purpose: str | None = None
    categories: tuple[str, ...] = ()
    observed: Observed = field(default_factory=Observed)
    """What the room saw of the rows as they came in (ranges, the busiest person's rows)."""
    people: int = 0
    """How many distinct people the rows are about."""


@dataclass(frozen=True, slots=True)
class Result:
    """What a query released: its columns and rows, and the budget it spent (if noisy)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    checked: Checked
    spends: tuple[Spend, ...] = ()
    noise: str | None = None
    """How the rows were chosen and the numbers noised, in a sentence; None for exact answers."""
    selection: dp.Selection | None = None
    """With noise: how the rows shown were chosen (their threshold, noise and loss)."""
    aggregates: dp.Privacy | None = None
    """With noise: the loss of the numbers, all aggregates together (the rest of the query's)."""
    receipt: Receipt | None = None
    """The ledger receipt of the result's release (when the room has a ledger)."""


class CleanRoom:
    """One analysis rule over the tables loaded into a private DuckDB database."""

    def __init__(
        self,
        rule: AnalysisRule,
        *,
        analyst: str,
        budgets: PrivacyBudgets | None = None,
        ledger: Ledger | None = None,
        engine: QueryEngine | None = None,
    ) -> None:
        """A room for ``analyst``; results are logged to ``ledger`` (or the budgets' ledger).

        ``engine`` runs the checked queries (default: the room's DuckDB database); the room
        closes it with itself.
        """
        if rule.privacy is not None and budgets is None:
            raise ConfigError("a rule with differential privacy needs the privacy budgets")
        self.rule = rule
        self.analyst = analyst
        self.budgets = budgets
        self.ledger = ledger if ledger is not None else budgets.ledger if budgets else None
        self.tables: dict[str, Table] = {}
        self._db = duckdb.connect(":memory:")
        self.engine: QueryEngine = engine if engine is not None else DuckDBEngine(self._db)
        self._taken: set[str] = set()

    def __enter__(self) -> CleanRoom:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Drop every table with the database (and the engine's copies)."""
        try:
            self.engine.close()
        finally:
            self._db.close()

    # -- loading -------------------------------------------------------------------------------

    def fetch(self, gateway: Gateway, name: str, exchange: Exchange) -> Release:
        """Read table ``name`` through the gateway (a record read) into the room."""
        release = gateway.exchange(exchange)
        if release.granularity is not Granularity.RECORD:
            raise InvalidInput(
                f"table {name}: the clean room reads records, and clause "
                f"{exchange.request.clause} releases {release.granularity.value}s"
            )
        if release.decision.filter is None:  # pragma: no cover - the gateway never allows so
            raise GatewayError("the release does not say whose data it is: nothing was loaded")
        r = release.decision.request
        self.load(
            name,
            release.columns,
            release.rows,
            party=release.decision.filter.controller,
            agreement=r.agreement,
            clause=r.clause,
            purpose=r.purpose,
            categories=tuple(sorted(r.categories)),
        )
        return release

    def load(
        self,
        name: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        party: str,
        agreement: str | None = None,
        clause: str | None = None,
        purpose: str | None = None,
        categories: tuple[str, ...] = (),
    ) -> Table:
        """Put rows into the room as table ``name`` (one of the rule's tables)."""
        name = name.lower()
        if name not in self.rule.tables:
            raise InvalidInput(
                f"table {name} is not in the rule (it names {', '.join(sorted(self.rule.tables))})"
            )
        if name in self.tables:
            raise InvalidInput(f"table {name} is already in the room")
        lowered = tuple(c.lower() for c in columns)
        bad = [c for c in lowered if not c.isidentifier() or c.startswith("_accord")]
        if bad or len(set(lowered)) != len(lowered):
            raise InvalidInput(f"table {name}: column names must be distinct plain names: {bad}")
        person = self.rule.person_of(name)
        if person not in lowered:
            raise InvalidInput(
                f"table {name} has no column {person}: the clause must release whom each row is "
                "about, for the room to count distinct people"
            )
        types = [_duck_type(rows, i) for i in range(len(lowered))]
        _copy_into(self._db, name, lowered, types, rows)
        return self.admit(
            name,
            party=party,
            agreement=agreement,
            clause=clause,
            purpose=purpose,
            categories=categories,
        )

    @property
    def database(self) -> duckdb.DuckDBPyConnection:
        """The room's DuckDB database: only for tables built in place, then :meth:`admit`-ted."""
        return self._db

    def admit(
        self,
        name: str,
        *,
        party: str,
        agreement: str | None = None,
        clause: str | None = None,
        purpose: str | None = None,
        categories: tuple[str, ...] = (),
    ) -> Table:
        """Take table ``name``, already in :attr:`database`, into the room.

        Rows from another party come in through :meth:`fetch`; this is for data built in the
        database itself (a benchmark's generated events). Each row is given its random rank among
        its person's rows, which bounds every noisy query's contributions (see ``checks``).
        """
        name = name.lower()
        if name not in self.rule.tables:
            raise InvalidInput(
                f"table {name} is not in the rule (it names {', '.join(sorted(self.rule.tables))})"
            )
        if name in self.tables:
            raise InvalidInput(f"table {name} is already in the room")
        with _duck(f"reading table {name}"):
            described = self._db.execute(f"DESCRIBE {_quote(name)}").fetchall()
        columns = tuple(str(row[0]).lower() for row in described)
        bad = [c for c in columns if not c.isidentifier() or c.startswith("_accord")]
        if bad or len(set(columns)) != len(columns):
            raise InvalidInput(f"table {name}: column names must be distinct plain names: {bad}")
        person = self.rule.person_of(name)
        if person not in columns:
            raise InvalidInput(
                f"table {name} has no column {person}: the clause must release whom each row is "
                "about, for the room to count distinct people"
            )
        numeric = [str(row[0]).lower() for row in described if _numeric(str(row[1]))]
        table = _quote(name)
        with _duck(f"ranking the rows of {name} by person"):
            # The random order is drawn as a column first: a window may not order by random().
            self._db.execute(
                f"CREATE OR REPLACE TABLE {table} AS SELECT * EXCLUDE (_accord_r), "  # noqa: S608 - checked names
                f"row_number() OVER (PARTITION BY {_quote(person)} ORDER BY _accord_r) "
                f"AS {RANK_COLUMN} FROM (SELECT *, random() AS _accord_r FROM {table})"
            )
            spans = ", ".join(f"min({_quote(c)}), max({_quote(c)})" for c in numeric)
            # Each person's first row is ranked 1: counting those counts the people.
            found = self._db.execute(
                f"SELECT count(*), max({RANK_COLUMN}), count_if({RANK_COLUMN} = 1)"  # noqa: S608 - checked names
                f"{', ' if spans else ''}{spans} FROM {table}"
            ).fetchone() or (0, None, 0)
        count, most, people, *bounds = found
        ranges = {
            c: (float(lo), float(hi))
            for c, lo, hi in zip(numeric, bounds[::2], bounds[1::2], strict=True)
            if lo is not None and hi is not None
        }
        admitted = Table(
            name,
            party,
            person,
            columns,
            int(count),
            agreement,
            clause,
            purpose,
            categories,
            Observed(ranges, int(most) if most is not None else None),
            int(people or 0),
        )
        self.tables[name] = admitted
        return admitted

    # -- querying ------------------------------------------------------------------------------

    def check(self, sql: str) -> Checked:
        """Check ``sql`` against the rule; raises :class:`QueryRefused` saying why not."""
        schema = {name: t.columns for name, t in self.tables.items()}
        observed = {name: t.observed for name, t in self.tables.items()}
        checked = check_query(self.rule, sql, schema, observed)
        missing = sorted(set(checked.tables) - set(self.tables))
        if missing:
            raise QueryRefused("table", f"table {', '.join(missing)} is not loaded in the room")
        return checked

    def run(self, sql: str) -> Result:
        """Check, spend (if noisy), run and noise ``sql``; only the result leaves the room."""
        checked = self.check(sql)
        noisy = self.rule.privacy is not None and checked.kind is RuleKind.AGGREGATION
        # The spend is durable in the ledger before anything is computed or released.
        spends = self._spend(checked) if noisy else ()
        for name in checked.tables:
            if name not in self._taken:
                self.engine.take(name, self._db)
                self._taken.add(name)
        result = replace(answer(self.engine, self.rule, checked), spends=spends)
        if self.ledger is None:
            return result
        return replace(result, receipt=self._log(result))

    def _log(self, result: Result) -> Receipt:
        """The result's release entry, durable before the result leaves the room."""
        checked = result.checked
        tables = [self.tables[name] for name in checked.tables]
        first = tables[0]
        people = sum(t.people for t in tables)
        kind = checked.kind.value
        entry = ReleaseEntry(
            agreement=first.agreement,
            clause=first.clause,
            purpose=first.purpose,
            categories=tuple(sorted({c for t in tables for c in t.categories})),
            reason=(
                f"clean room → {self.analyst}: {len(result.rows)} rows of "
                f"{', '.join(checked.outputs)} from {', '.join(checked.tables)} under a {kind} "
                f"rule{f' ({result.noise})' if result.noise else ''}"
            ),
            people=people,
            provider=", ".join(sorted({t.party for t in tables})),
            recipient=self.analyst,
            fields=tuple(sorted(checked.outputs)),
            granularity="record" if checked.kind is RuleKind.LIST else "aggregate",
        )
        if self.ledger is None:  # pragma: no cover - only called with a ledger
            raise ConfigError("the clean room has no ledger to log its results to")
        (receipt,) = self.ledger.append([entry])
        return receipt

    def _spend(self, checked: Checked) -> tuple[Spend, ...]:
        """Charge everyone whose rows the query reads (the whole of every table it names)."""
        privacy, budgets = self.rule.privacy, self.budgets
        if privacy is None or budgets is None:  # pragma: no cover - checked in __init__
            raise ConfigError("a noisy query needs a rule with privacy and the budgets")
        by_party: dict[str, set[str]] = {}
        for name in checked.tables:
            t = self.tables[name]
            with _duck(f"listing the people of {name}"):
                person = _quote(t.person)
                found = self._db.execute(
                    f"SELECT DISTINCT CAST({person} AS VARCHAR) FROM {_quote(name)} "  # noqa: S608 - names checked by load()
                    f"WHERE {person} IS NOT NULL"
                ).fetchall()
            by_party.setdefault(t.party, set()).update(str(p) for (p,) in found)
        charges = []
        for party, people in sorted(by_party.items()):
            first = next(self.tables[n] for n in checked.tables if self.tables[n].party == party)
            charge = Charge(
                party=party,
                people=people,
                cost=Cost(privacy.epsilon, privacy.delta, privacy.mechanism.value),
                recipient=self.analyst,
                description=(
                    f"clean-room query over {', '.join(checked.tables)} "
                    f"for {', '.join(checked.outputs)}"
                ),
                agreement=first.agreement,
                clause=first.clause,
                purpose=first.purpose,
                categories=first.categories,
            )
            charges.append(charge)
        # All parties' people at once: if anyone in any party is short, nobody is charged.
        return budgets.spend_together(charges)


# -- answering -------------------------------------------------------------------------------------


def answer(
    db: duckdb.DuckDBPyConnection | QueryEngine, rule: AnalysisRule, checked: Checked
) -> Result:
    """Run a checked query on ``db`` (a DuckDB database or an engine): small groups dropped,
    aggregates noised if the rule says. The engine computes exact aggregates; the noise is
    OpenDP's, added here.

    With noise, which groups show is chosen with noise too (:class:`accord.pets.dp.Selection`).
    This spends no budget: :meth:`CleanRoom.run` spends before it calls this.
    """
    engine = DuckDBEngine(db) if isinstance(db, duckdb.DuckDBPyConnection) else db
    columns, rows = engine.query(checked.sql)
    privacy = rule.privacy
    if privacy is None or checked.kind is not RuleKind.AGGREGATION:
        return Result(columns, rows, checked)
    (select_epsilon, select_delta), aggregates = privacy.shares(len(checked.metrics))
    # Each person is counted in one group of each table read (the group of their chosen row),
    # and a group's count is the fewest of its tables': one person moves at most one group's
    # count per table, by one. Without dimensions there is one group.
    groups = checked.people_columns if checked.dimensions else 1
    selection = dp.calibrate_selection(
        select_epsilon,
        select_delta,
        privacy.mechanism,
        groups=groups,
        minimum=int(rule.min_people or 0),
        counted=COUNTED,
    )
    rows = _selected(selection, columns, rows)
    columns, rows = _noised(rule, checked, columns, rows, aggregates)
    sensitivity = privacy.max_rows * checked.people_columns
    mechanism = privacy.mechanism.value
    noise = (
        f"rows shown only where the count of people ({selection.counted}) plus {mechanism} "
        f"noise (scale {selection.scale:.3g}) reaches {selection.threshold}, for epsilon "
        f"{_short(select_epsilon)} and delta {_short(select_delta)} (each person counts in at "
        f"most {groups} {'row' if groups == 1 else 'rows'}); {mechanism} noise on the numbers "
        f"for epsilon "
        f"{_short(aggregates.epsilon)}"
        f"{f' and delta {_short(aggregates.delta)}' if aggregates.delta else ''}, split evenly "
        f"over {len(checked.metrics)} aggregates; at most {privacy.max_rows} rows per person "
        f"(each person changes a count by at most {sensitivity}); in all epsilon "
        f"{_short(privacy.epsilon)} and delta {_short(privacy.delta)} per person"
    )
    return Result(columns, rows, checked, noise=noise, selection=selection, aggregates=aggregates)


def _short(amount: float) -> str:
    return f"{amount:.4g}"


def _selected(
    selection: dp.Selection, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """The rows whose count of people (the fewest of any table read, each person counted in one
    group), with noise, reaches the selection's threshold."""
    counted = [i for i, name in enumerate(columns) if name.startswith(PEOPLE_COLUMN)]
    # One person changes the smallest of a group's counts by at most one, as they do each count.
    people = [min(int(r[i] or 0) for i in counted) for r in rows]
    return [r for r, kept in zip(rows, selection.keep(people), strict=True) if kept]


def _noised(
    rule: AnalysisRule,
    checked: Checked,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    aggregates: dp.Privacy,
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """The rows with every aggregate noised, and the helper columns dropped."""
    privacy = rule.privacy
    if privacy is None:  # pragma: no cover - only called when noisy
        return columns, rows
    share = aggregates.split(len(checked.metrics))
    at = {name: i for i, name in enumerate(columns)}
    table = [list(r) for r in rows]
    # Each table read bounds its own people: a row may bring one of each.
    per_person = privacy.max_rows * checked.people_columns
    for metric in checked.metrics:
        values = [r[at[metric.output]] for r in table]
        # An average arrives as its sum, with its count in a helper column.
        helper = at.get(avg_count(metric))
        counts = [r[helper] if helper is not None else 0 for r in table]
        noised = _noise(rule, metric, values, counts, share, rows=per_person)
        for r, value in zip(table, noised, strict=True):
            r[at[metric.output]] = value
    keep = [i for i, name in enumerate(columns) if name in checked.outputs]
    return tuple(columns[i] for i in keep), [tuple(r[i] for i in keep) for r in table]


def _noise(
    rule: AnalysisRule,
    metric: Metric,
    values: list[Any],
    counts: list[Any],
    share: dp.Privacy,
    *,
    rows: int,
) -> list[Any]:
    """One aggregate column, noised for a person contributing at most ``rows`` rows."""
    privacy = rule.privacy
    if privacy is None:  # pragma: no cover - only called when noisy
        return values
    if metric.function in ("count_star", "count", "count_distinct"):
        noisy = dp.noisy_counts([int(v or 0) for v in values], dp.Bounds(rows), share)
        # Post-processing keeps the guarantee; a count below zero says nothing.
        return [max(0, c) for c in noisy]
    lower, upper = privacy.bounds[metric.column or ""]
    bounds = dp.Bounds(rows, lower, upper)
    if metric.function == "sum":
        if all(v is None or isinstance(v, int) for v in values):
            # An integer column's sums (its values already within the bounds, so not clamped
            # into floats): integer noise, exact and quicker to draw.
            return dp.noisy_whole_sums([int(v or 0) for v in values], bounds, share)
        return dp.noisy_sums([float(v or 0) for v in values], bounds, share)
    return dp.noisy_means(
        [float(v or 0) for v in values], [int(c or 0) for c in counts], bounds, share
    )


# -- loading rows into DuckDB ----------------------------------------------------------------------


def _duck_type(rows: Sequence[Sequence[Any]], i: int) -> str:
    """The DuckDB type of column ``i``, from its first value that is not null."""
    for row in rows:
        v = row[i]
        if v is None:
            continue
        if isinstance(v, bool):
            return "BOOLEAN"
        if isinstance(v, int):
            return "BIGINT"
        if isinstance(v, float):
            return "DOUBLE"
        if isinstance(v, datetime):
            return "TIMESTAMPTZ" if v.tzinfo is not None else "TIMESTAMP"
        if isinstance(v, date):
            return "DATE"
        return "VARCHAR"
    return "VARCHAR"


def _copy_into(
    db: duckdb.DuckDBPyConnection,
    name: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Create table ``name`` and fill it through a CSV file (far faster than inserts)."""
    spec = ", ".join(f"{_quote(c)} {t}" for c, t in zip(columns, types, strict=True))
    with _duck(f"loading table {name}"), tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.csv"
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, quoting=csv.QUOTE_ALL)
            for row in rows:
                writer.writerow([_csv_value(v) for v in row])
        db.execute(f"CREATE TABLE {_quote(name)} ({spec})")
        if rows:
            types_map = ", ".join(
                f"{_literal(c)}: {_literal(t)}" for c, t in zip(columns, types, strict=True)
            )
            reader = (
                f"read_csv(?, header = false, columns = {{{types_map}}}, nullstr = ?, "
                "quote = '\"', escape = '\"', allow_quoted_nulls = true)"
            )
            insert = f"INSERT INTO {_quote(name)} SELECT * FROM {reader}"  # noqa: S608 - checked names
            db.execute(insert, [str(path), _NULL])


def _numeric(duck_type: str) -> bool:
    kind = duck_type.upper()
    return kind in {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE"} or (
        kind.startswith(("DECIMAL", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"))
    )


def _csv_value(value: Any) -> Any:
    if value is None:
        return _NULL
    if isinstance(value, date):
        return value.isoformat()
    return value


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
