"""Checking a clean-room query against its analysis rule with sqlglot, and rewriting it to run.

A query is parsed (DuckDB's dialect) and walked; anything the rule does not allow is refused with
a :class:`QueryRefused` naming the check and saying why in a sentence. What passes an aggregation
rule is not run as written: it is rebuilt so that every output row also counts the distinct people
of every table it reads, and rows below the rule's minimum are dropped by the database
(``HAVING count(DISTINCT person) >= min_people``); with differential privacy, each person's rows
are bounded, and each group counts the people whose one chosen row (their first, in a random
order per person) lies in it: every person is counted in one group at most, so the counts come
back with the rows, cheaply, for the room to choose with noise which rows to show (Wilson et al.,
*Differentially Private SQL with Bounded User Contribution*, PoPETs 2020). A query cannot
sidestep the threshold: subqueries, CTEs, set
operations and window functions are refused, so the only rows it can compute are the rebuilt
query's groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from accord.errors import AccordError
from accord.pets.rules import Aggregate, AnalysisRule, RuleKind

RANK_COLUMN = "_accord_rank"
"""A hidden column of every table in the room: each row's random rank among its person's rows."""
PEOPLE_COLUMN = "_accord_people"
"""With noise, the prefix of the extra result columns counting each group's people, one per table
read (``_accord_people0``, ...): the people of that table whose one chosen row is in the group,
so that each person is counted in one group at most."""
COUNTED = "each person counted in one group, chosen at random among their rows"
"""What a noisy query's counts of people count, in the words its result uses."""


class QueryRefused(AccordError):
    """A clean-room query its analysis rule does not allow; nothing ran, nothing was released."""

    exit_code = 3

    def __init__(self, check: str, message: str) -> None:
        self.check = check
        super().__init__(message, where=f"clean room check {check}")


# Scalar functions a dimension or condition may apply (dates, text case, substrings, casts).
_SCALAR = (
    exp.Cast,
    exp.TryCast,
    exp.Date,
    exp.DateTrunc,
    exp.TimestampTrunc,
    exp.TimeToStr,
    exp.StrToTime,
    exp.Substring,
    exp.Lower,
    exp.Upper,
    exp.Year,
    exp.Month,
    exp.Day,
    exp.DayOfWeek,
    exp.Coalesce,
    exp.Trim,
)
# The parts of a SELECT a clean-room query may have (sqlglot's names for them).
_CLAUSES = frozenset(
    {"expressions", "from_", "joins", "where", "group", "having", "order", "limit", "offset"}
    | {"distinct"}
)
_LEAVES = (exp.Identifier, exp.Literal, exp.DataType, exp.Var, exp.Null, exp.Boolean)
_ARITHMETIC = (exp.Paren, exp.Neg, exp.Add, exp.Sub, exp.Mul, exp.Div)
_PREDICATES = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.And,
    exp.Or,
    exp.Not,
    exp.In,
    exp.Between,
    exp.Like,
    exp.Is,
    exp.Tuple,
)


@dataclass(frozen=True, slots=True)
class Metric:
    """One aggregate output column: its function over one metric column (or ``count(*)``)."""

    output: str
    function: str
    """``count_star``, or an :class:`~accord.pets.rules.Aggregate` value."""
    column: str | None
    """``table.column`` of the metric, or None for ``count(*)``."""
    position: int
    """Its place among the output columns."""


@dataclass(frozen=True, slots=True)
class Checked:
    """A query that passed its rule: what to run, what it reads, and what each column is."""

    kind: RuleKind
    sql: str
    tables: tuple[str, ...]
    """The rule's tables it reads (each once, whatever the aliases)."""
    outputs: tuple[str, ...]
    metrics: tuple[Metric, ...] = ()
    people_columns: int = 0
    """How many person columns bound each row (one per table read): the sensitivity factor."""
    template: str | None = None
    dimensions: tuple[str, ...] = ()
    """The output columns that are dimensions, in output order."""


@dataclass(frozen=True, slots=True)
class Observed:
    """What the room saw of a table when it came in: its value ranges and its busiest person.

    Used only to leave out work that cannot change the answer: clamping a column whose values
    all lie within the bounds already, or dropping rows beyond ``max_rows`` when nobody has more.
    """

    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """Smallest and largest value of each numeric column."""
    most_rows: int | None = None
    """The most rows any one person has in the table (None: unknown)."""


def check_query(
    rule: AnalysisRule,
    sql: str,
    schema: Mapping[str, Sequence[str]],
    observed: Mapping[str, Observed] | None = None,
) -> Checked:
    """Check ``sql`` against ``rule`` over tables with the columns in ``schema``.

    Returns what to run; raises :class:`QueryRefused` with the check that failed and why.
    """
    tree = _parse(sql)
    if rule.kind is RuleKind.CUSTOM:
        return _custom(rule, tree)
    return _Checker(rule, tree, schema, observed or {}).run()


MAX_NESTING = 64
"""How deep a query's parentheses may nest: far beyond any report, and within what the parser's
recursion can take."""


def _nesting(sql: str) -> int:
    """The deepest nesting of parentheses in ``sql`` (outside quoted text, roughly: enough to
    refuse a query built to exhaust the parser)."""
    depth = deepest = 0
    for c in sql:
        if c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth -= 1
    return deepest


def _parse(sql: str) -> exp.Select:
    if _nesting(sql) > MAX_NESTING:
        raise QueryRefused("syntax", f"the query nests parentheses more than {MAX_NESTING} deep")
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except (ParseError, TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QueryRefused("syntax", f"the query is not valid SQL: {first}") from exc
    except RecursionError:
        raise QueryRefused("syntax", "the query nests too deeply to be read") from None
    if len(statements) != 1:
        raise QueryRefused("one-statement", "a clean-room query is exactly one SELECT statement")
    (tree,) = statements
    if not isinstance(tree, exp.Select):
        raise QueryRefused(
            "select-only", f"only a SELECT runs in the clean room, not {tree.key.upper()}"
        )
    return tree


# -- custom rules: pre-approved templates -------------------------------------------------------


def _custom(rule: AnalysisRule, tree: exp.Select) -> Checked:
    """The query must be one of the rule's templates, with literals where it has placeholders."""
    for name, template_sql in sorted(rule.templates.items()):
        template = _parse(template_sql)
        if _matches(template, tree):
            tables = sorted({t.name.lower() for t in tree.find_all(exp.Table)})
            outputs = tuple(p.alias_or_name for p in tree.expressions)
            return Checked(
                RuleKind.CUSTOM, tree.sql("duckdb"), tuple(tables), outputs, template=name
            )
    raise QueryRefused(
        "template",
        "the query is none of the pre-approved templates of this custom rule "
        f"({', '.join(sorted(rule.templates))}); only those run, with values for their "
        "placeholders",
    )


def _leaves(tree: exp.Expression) -> list[exp.Expression]:
    return [n for n in tree.walk() if isinstance(n, exp.Literal | exp.Placeholder)]


def _matches(template: exp.Select, query: exp.Select) -> bool:
    wanted, given = _leaves(template), _leaves(query)
    if len(wanted) != len(given):
        return False
    for w, g in zip(wanted, given, strict=True):
        if not isinstance(g, exp.Literal):
            return False  # the query fills every placeholder with a value
        if isinstance(w, exp.Literal) and w != g:
            return False
    # Same shape once every value is blanked out.
    return _blank(template) == _blank(query)


def _blank(tree: exp.Select) -> str:
    def blank(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Literal | exp.Placeholder):
            return exp.Placeholder()
        return node

    return tree.copy().transform(blank).sql("duckdb")


# -- aggregation and list rules ------------------------------------------------------------------


class _Checker:
    def __init__(
        self,
        rule: AnalysisRule,
        tree: exp.Select,
        schema: Mapping[str, Sequence[str]],
        observed: Mapping[str, Observed],
    ) -> None:
        self.rule = rule
        self.observed = observed
        self.tree = tree
        self.schema = {t.lower(): {c.lower() for c in cols} for t, cols in schema.items()}
        self.aliases: dict[str, str] = {}

    def run(self) -> Checked:
        self._shape()
        self._tables()
        self._joins()
        if self.rule.kind is RuleKind.AGGREGATION:
            return self._aggregation()
        return self._list()

    # -- what every query must be ------------------------------------------------------------------

    def _shape(self) -> None:
        for node in self.tree.walk():
            if isinstance(node, exp.TableSample):
                raise QueryRefused("clause", "sampling is not allowed in a clean-room query")
            if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
                raise QueryRefused(
                    "select-star",
                    "SELECT * is not allowed: name the columns, since the rule allows only some",
                )
            if isinstance(node, exp.With | exp.CTE):
                raise QueryRefused(
                    "subquery",
                    "a CTE (WITH) is not allowed: it could compute row-level or under-threshold "
                    "results that the minimum of distinct people never sees",
                )
            if (isinstance(node, exp.Select) and node is not self.tree) or isinstance(
                node, exp.Subquery | exp.Exists | exp.SetOperation
            ):
                raise QueryRefused(
                    "subquery",
                    "a subquery is not allowed: it could compute row-level or under-threshold "
                    "results that the minimum of distinct people never sees",
                )
            if isinstance(node, exp.Window):
                raise QueryRefused(
                    "window", "window functions are not allowed: they compute per-row results"
                )
        for clause, value in self.tree.args.items():
            if value and clause not in _CLAUSES:
                raise QueryRefused(
                    "clause",
                    f"{clause.rstrip('_').upper()} is not allowed in a clean-room query (only "
                    "SELECT, FROM, JOIN, WHERE, GROUP BY, HAVING, ORDER BY, LIMIT and OFFSET)",
                )

    def _tables(self) -> None:
        if self.tree.args.get("from_") is None:
            raise QueryRefused("table", "the query reads no table (it needs FROM)")
        sources = [self.tree.args["from_"].this]
        sources += [join.this for join in self.tree.args.get("joins") or []]
        for source in sources:
            if not (isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier)):
                raise QueryRefused(
                    "table",
                    f"{source.sql('duckdb')}: a clean-room query reads the rule's tables, by "
                    "name, and nothing else",
                )
        for table in self.tree.find_all(exp.Table):
            if table.args.get("db") or table.args.get("catalog"):
                raise QueryRefused("table", f"{table.sql('duckdb')}: name a rule's table plainly")
            name = table.name.lower()
            if name not in self.rule.tables:
                raise QueryRefused(
                    "table",
                    f"table {name} is not in this rule (it allows "
                    f"{', '.join(sorted(self.rule.tables))})",
                )
            alias = table.alias_or_name.lower()
            if alias in self.aliases:
                raise QueryRefused("table", f"{alias} names two tables in the query")
            self.aliases[alias] = name

    def _joins(self) -> None:
        for join in self.tree.args.get("joins") or []:
            if join.side or (join.kind and join.kind.upper() != "INNER"):
                raise QueryRefused(
                    "join",
                    f"only inner joins are allowed, not {(join.side or join.kind).upper()} JOIN",
                )
            on = join.args.get("on")
            if on is None or join.args.get("using"):
                raise QueryRefused(
                    "join",
                    "a join must say ON which join columns it matches (a cross join, a comma "
                    "join or USING is not allowed)",
                )
            for condition in on.flatten() if isinstance(on, exp.And) else [on]:
                if not (
                    isinstance(condition, exp.EQ)
                    and isinstance(condition.this, exp.Column)
                    and isinstance(condition.expression, exp.Column)
                ):
                    raise QueryRefused(
                        "join",
                        f"a join condition must be column = column, not {condition.sql('duckdb')}",
                    )
                for side in (condition.this, condition.expression):
                    q = self._resolve(side)
                    if q not in self.rule.join_columns:
                        allowed = ", ".join(sorted(self.rule.join_columns)) or "none"
                        raise QueryRefused(
                            "join-column",
                            f"the query joins on {q}, which is not a join column of this rule "
                            f"(join columns: {allowed})",
                        )

    def _resolve(self, column: exp.Column) -> str:
        """``table.column`` of a column reference (through the query's aliases)."""
        name = column.name.lower()
        qualifier = column.table.lower() if column.table else None
        if qualifier is not None:
            table = self.aliases.get(qualifier)
            if table is None:
                raise QueryRefused("column", f"{column.sql('duckdb')}: no table {qualifier} here")
            if name not in self.schema.get(table, set()):
                raise QueryRefused("column", f"table {table} has no column {name}")
            return f"{table}.{name}"
        having = sorted({t for t in self.aliases.values() if name in self.schema.get(t, set())})
        if not having:
            raise QueryRefused("column", f"no table in the query has a column {name}")
        if len(having) > 1:
            raise QueryRefused(
                "column", f"column {name} is in {', '.join(having)}: say which table's"
            )
        return f"{having[0]}.{name}"

    def _alias_of(self, column: exp.Column) -> str:
        """The alias (or table name) of the table a column reference reads."""
        if column.table:
            return column.table.lower()
        table = self._resolve(column).split(".")[0]
        return next(a for a, t in self.aliases.items() if t == table)

    def _scalar(self, node: exp.Expression, allowed: frozenset[str], what: str, check: str) -> None:
        """Every column of ``node`` is in ``allowed``; only scalar functions and operators."""
        for part in node.walk():
            if isinstance(part, exp.Column):
                q = self._resolve(part)
                if q not in allowed:
                    raise QueryRefused(check, what.format(column=q))
            elif isinstance(part, exp.AggFunc):
                raise QueryRefused(
                    "aggregate", f"{part.sql('duckdb')} is an aggregate where none may be"
                )
            elif not isinstance(part, _LEAVES + _ARITHMETIC + _PREDICATES + _SCALAR):
                raise QueryRefused(
                    "function", f"{part.sql('duckdb')} is not allowed in a clean-room query"
                )

    # -- aggregation -------------------------------------------------------------------------------

    def _aggregation(self) -> Checked:
        rule, tree = self.rule, self.tree
        dims: list[tuple[str, exp.Expression]] = []
        metrics: list[tuple[Metric, exp.Expression | None]] = []
        outputs: list[str] = []
        row_level = (
            "{column} is not a dimension of this rule: showing it is row-level output, which "
            "an aggregation rule never releases"
        )
        for position, projection in enumerate(tree.expressions):
            inner = projection.this if isinstance(projection, exp.Alias) else projection
            name = _output_name(projection, position, outputs)
            if inner.find(exp.AggFunc) is None:
                self._scalar(inner, rule.dimensions, row_level, "row-level")
                dims.append((name, inner))
            else:
                metric, argument = self._metric(inner, name, position)
                metrics.append((metric, argument))
            outputs.append(name)
        if not metrics:
            raise QueryRefused(
                "row-level",
                "an aggregation rule releases aggregates only, and this query computes none "
                "(row-level output)",
            )
        self._grouping(dims, outputs)
        where = tree.args.get("where")
        if where is not None:
            self._scalar(
                where.this,
                rule.dimensions,
                "the query filters on {column}, which is not a dimension of this rule",
                "filter",
            )
        if tree.args.get("having") is not None:
            raise QueryRefused(
                "having",
                "HAVING is not allowed: the clean room applies the rule's minimum of distinct "
                "people to every row itself",
            )
        if tree.args.get("distinct") is not None:
            raise QueryRefused("distinct", "SELECT DISTINCT is not needed: the query groups")
        order = self._order(outputs, {e.sql("duckdb"): name for name, e in dims})
        sql = self._rewrite(dims, metrics, outputs, order)
        return Checked(
            RuleKind.AGGREGATION,
            sql,
            tuple(sorted(set(self.aliases.values()))),
            tuple(outputs),
            tuple(m for m, _ in metrics),
            people_columns=len(self.aliases),
            dimensions=tuple(name for name, _ in dims),
        )

    def _metric(
        self, inner: exp.Expression, name: str, position: int
    ) -> tuple[Metric, exp.Expression | None]:
        allowed_fns = "count, count(DISTINCT …), sum and avg"
        if not isinstance(inner, exp.AggFunc):
            raise QueryRefused(
                "metric",
                f"{inner.sql('duckdb')}: each output column is one aggregate of one metric "
                "(e.g. sum(t.x)), not an expression around aggregates",
            )
        argument: exp.Expression | None = inner.this
        if isinstance(inner, exp.Count) and isinstance(argument, exp.Star):
            return Metric(name, "count_star", None, position), None
        if isinstance(inner, exp.Count) and isinstance(argument, exp.Distinct):
            if len(argument.expressions) != 1:
                raise QueryRefused("metric", "count(DISTINCT …) takes one column")
            function, argument = Aggregate.COUNT_DISTINCT, argument.expressions[0]
        elif isinstance(inner, exp.Count):
            function = Aggregate.COUNT
        elif isinstance(inner, exp.Sum):
            function = Aggregate.SUM
        elif isinstance(inner, exp.Avg):
            function = Aggregate.AVG
        else:
            raise QueryRefused(
                "function",
                f"{inner.sql('duckdb')}: only {allowed_fns} are aggregates a rule may allow",
            )
        if not isinstance(argument, exp.Column):
            raise QueryRefused(
                "metric",
                f"{inner.sql('duckdb')}: an aggregate takes one metric column, not an expression",
            )
        q = self._resolve(argument)
        allowed = self.rule.metrics.get(q)
        if allowed is None:
            raise QueryRefused(
                "metric",
                f"{q} is not a metric of this rule "
                f"(metrics: {', '.join(sorted(self.rule.metrics))})",
            )
        if function not in allowed:
            raise QueryRefused(
                "metric",
                f"{function.value}({q}) is not allowed: metric {q} allows "
                f"{', '.join(sorted(a.value for a in allowed))}",
            )
        return Metric(name, function.value, q, position), argument

    def _grouping(self, dims: list[tuple[str, exp.Expression]], outputs: list[str]) -> None:
        group = self.tree.args.get("group")
        keys = list(group.expressions) if group is not None else []
        grouped: set[str] = set()
        by_sql = {expr.sql("duckdb"): name for name, expr in dims}
        for key in keys:
            if isinstance(key, exp.Literal) and key.is_int:
                index = int(key.this) - 1
                name = outputs[index] if 0 <= index < len(outputs) else None
            elif isinstance(key, exp.Column) and not key.table and key.name in by_sql.values():
                name = key.name
            else:
                name = by_sql.get(key.sql("duckdb"))
            if name is None or name not in {n for n, _ in dims}:
                raise QueryRefused(
                    "group",
                    f"GROUP BY {key.sql('duckdb')}: group only by the dimensions the query shows",
                )
            grouped.add(name)
        for name, _ in dims:
            if name not in grouped:
                raise QueryRefused(
                    "row-level",
                    f"output column {name} is neither aggregated nor grouped: that is row-level "
                    "output, which an aggregation rule never releases",
                )

    def _order(self, outputs: list[str], dims: dict[str, str]) -> list[tuple[str, bool]]:
        """ORDER BY keys as output names; ``dims`` maps each dimension's SQL to its name."""
        order = self.tree.args.get("order")
        noisy = self.rule.privacy is not None
        if noisy and (self.tree.args.get("limit") or self.tree.args.get("offset")):
            raise QueryRefused(
                "limit",
                "LIMIT and OFFSET are not allowed with differential privacy: which rows made "
                "the cut would depend on exact, noiseless values",
            )
        out: list[tuple[str, bool]] = []
        for ordered in order.expressions if order is not None else []:
            key = ordered.this
            if isinstance(key, exp.Literal) and key.is_int and 0 < int(key.this) <= len(outputs):
                name = outputs[int(key.this) - 1]
            elif isinstance(key, exp.Column) and not key.table and key.name in outputs:
                name = key.name
            elif key.sql("duckdb") in dims:
                name = dims[key.sql("duckdb")]
            else:
                raise QueryRefused(
                    "order", f"ORDER BY {key.sql('duckdb')}: order by output columns, by name"
                )
            if noisy and name not in dims.values():
                raise QueryRefused(
                    "order",
                    f"ORDER BY {name} is not allowed with differential privacy: order by "
                    "dimensions (the order of noiseless values would leak them)",
                )
            out.append((name, bool(ordered.args.get("desc"))))
        return out

    def _rewrite(
        self,
        dims: list[tuple[str, exp.Expression]],
        metrics: list[tuple[Metric, exp.Expression | None]],
        outputs: list[str],
        order: list[tuple[str, bool]],
    ) -> str:
        """The query as it runs.

        Exact answers drop small groups in SQL: ``HAVING count(DISTINCT person) >= min``. Noisy
        answers count every group's people in extra columns instead, each person in the one group
        of their chosen row (a filtered count in the same pass, no ``DISTINCT``): the room keeps
        the groups whose counts, with noise, reach a threshold (``dp.Selection``).
        """
        rows, chosen = self._bounded(self._rows(dims, metrics))
        select = self._aggregates(dims, metrics)
        columns = [column for name in outputs for column in select[name]]
        noisy = self.rule.privacy is not None
        people = len(self.aliases)
        # count(person) leaves out rows about no one (a null person), as count(DISTINCT) does.
        columns += [
            f"count(_accord_p{k}) FILTER (WHERE {condition}) AS {PEOPLE_COLUMN}{k}"
            for k, condition in enumerate(chosen)
        ]
        query = exp.select(*columns, dialect="duckdb").from_(rows.subquery("_accord_rows"))
        groups = [f"_accord_d{i}" for i in range(len(dims))]
        if groups:
            query = query.group_by(*groups)
        minimum = int(self.rule.min_people or 0)
        if not noisy:
            query = query.having(
                *(f"count(DISTINCT _accord_p{k}) >= {minimum}" for k in range(people)),
                dialect="duckdb",
            )
        if order:
            keys = [f"{_quote(name)}{' DESC' if desc else ''}" for name, desc in order]
            query = exp.select("*").from_(query.subquery()).order_by(*keys, dialect="duckdb")
        limit, offset = self.tree.args.get("limit"), self.tree.args.get("offset")
        if limit is not None:
            query = query.limit(limit.expression.copy())
        if offset is not None:
            query = query.offset(offset.expression.copy())
        return query.sql("duckdb")

    def _bounded(self, rows: exp.Select) -> tuple[exp.Select, list[str]]:
        """With noise, at most ``max_rows`` rows of each person of each table read, and for each
        table the condition that picks each person's one chosen row among those kept.

        A person's chosen row depends only on their own rows (and their random order), so adding
        or removing them changes one group's count by one, and no other person's choice.
        """
        privacy = self.rule.privacy
        if privacy is None:
            return rows, []
        aliases = sorted(self.aliases)
        if len(aliases) == 1:
            # One table: its rows were ranked at random per person when it entered the room.
            seen = self.observed.get(self.aliases[aliases[0]])
            most = seen.most_rows if seen is not None else None
            if most is None or most > privacy.max_rows:
                rows = rows.where(f"{_quote(aliases[0])}.{RANK_COLUMN} <= {privacy.max_rows}")
            if self.tree.args.get("where") is None:
                # Every row is kept up to the bound, so each person's rank-1 row is there.
                return rows, ["_accord_k0 = 1"]
            # A filter may drop the rank-1 row: the chosen row is the first of those it keeps.
            first = "min(_accord_k0) OVER (PARTITION BY _accord_p0) AS _accord_m0"
            ranked = exp.select("*", first, dialect="duckdb").from_(rows.subquery())
            return ranked, ["_accord_k0 = _accord_m0"]
        # A join: rows are bounded per person of each table after joining, at random, and each
        # person's first row in that order is their chosen one. The random order is drawn as a
        # column first (a window may not order by random()).
        shuffled = exp.select("*", "random() AS _accord_r", dialect="duckdb").from_(rows.subquery())
        numbers = [
            f"row_number() OVER (PARTITION BY _accord_p{k} ORDER BY _accord_r) AS _accord_n{k}"
            for k in range(len(aliases))
        ]
        numbered = exp.select("*", *numbers, dialect="duckdb").from_(shuffled.subquery())
        kept = [f"_accord_n{k} <= {privacy.max_rows}" for k in range(len(aliases))]
        bounded = exp.select("*").from_(numbered.subquery()).where(*kept, dialect="duckdb")
        return bounded, [f"_accord_n{k} = 1" for k in range(len(aliases))]

    def _rows(
        self,
        dims: list[tuple[str, exp.Expression]],
        metrics: list[tuple[Metric, exp.Expression | None]],
    ) -> exp.Select:
        """The query's rows: each dimension, each metric's value (clamped if noisy), each person."""
        privacy = self.rule.privacy
        columns: list[exp.Expr] = [
            exp.alias_(e.copy(), f"_accord_d{i}") for i, (_, e) in enumerate(dims)
        ]
        for j, (metric, argument) in enumerate(metrics):
            if argument is None:
                continue
            value: exp.Expr = argument.copy()
            if privacy is not None and metric.function in ("sum", "avg"):
                lower, upper = privacy.bounds[metric.column or ""]
                if self._within(metric.column or "", lower, upper):
                    columns.append(exp.alias_(value, f"_accord_v{j}"))
                    continue  # every value already lies within the bounds: clamping is a no-op
                value = exp.func(
                    "least",
                    exp.func(
                        "greatest", exp.cast(value, "DOUBLE"), exp.Literal.number(repr(lower))
                    ),
                    exp.Literal.number(repr(upper)),
                )
            columns.append(exp.alias_(value, f"_accord_v{j}"))
        for k, alias in enumerate(sorted(self.aliases)):
            person = self.rule.person_of(self.aliases[alias])
            columns.append(
                exp.alias_(exp.column(person, table=alias, quoted=True), f"_accord_p{k}")
            )
        if privacy is not None and len(self.aliases) == 1:
            # Each row's random rank among its person's rows, given at admission.
            (alias,) = self.aliases
            columns.append(
                exp.alias_(exp.column(RANK_COLUMN, table=alias, quoted=True), "_accord_k0")
            )
        rows = exp.select(*columns).from_(self.tree.args["from_"].this.copy())
        for join in self.tree.args.get("joins") or []:
            rows = rows.join(join.copy())
        where = self.tree.args.get("where")
        if where is not None:
            rows = rows.where(where.this.copy())
        return rows

    def _within(self, column: str, lower: float, upper: float) -> bool:
        """Whether every value of ``table.column`` was seen to lie within ``[lower, upper]``."""
        table, name = column.split(".")
        seen = self.observed.get(table)
        span = seen.ranges.get(name) if seen is not None else None
        return span is not None and lower <= span[0] and span[1] <= upper

    def _aggregates(
        self,
        dims: list[tuple[str, exp.Expression]],
        metrics: list[tuple[Metric, exp.Expression | None]],
    ) -> dict[str, list[str]]:
        """The columns of the grouped query for each output, by name."""
        noisy = self.rule.privacy is not None
        select = {name: [f"_accord_d{i} AS {_quote(name)}"] for i, (name, _) in enumerate(dims)}
        for j, (metric, _) in enumerate(metrics):
            v, fn, out = f"_accord_v{j}", metric.function, _quote(metric.output)
            if fn == "count_star":
                select[metric.output] = [f"count(*) AS {out}"]
            elif fn == "count_distinct":
                select[metric.output] = [f"count(DISTINCT {v}) AS {out}"]
            elif fn == "avg" and noisy:
                # Noised as a sum over a count (dp.noisy_means): both leave the database.
                select[metric.output] = [f"sum({v}) AS {out}", f"count({v}) AS {avg_count(metric)}"]
            else:
                select[metric.output] = [f"{fn}({v}) AS {out}"]
        return select

    # -- list --------------------------------------------------------------------------------------

    def _list(self) -> Checked:
        rule, tree = self.rule, self.tree
        outputs: list[str] = []
        for position, projection in enumerate(tree.expressions):
            inner = projection.this if isinstance(projection, exp.Alias) else projection
            if inner.find(exp.AggFunc) is not None:
                raise QueryRefused(
                    "aggregate", "a list rule lists overlapping rows; it computes no aggregates"
                )
            if not isinstance(inner, exp.Column):
                raise QueryRefused(
                    "list-column",
                    f"{inner.sql('duckdb')}: a list query shows columns as they are",
                )
            q = self._resolve(inner)
            if q not in rule.columns:
                raise QueryRefused(
                    "list-column",
                    f"{q} is not a column this list rule may show "
                    f"({', '.join(sorted(rule.columns))})",
                )
            outputs.append(_output_name(projection, position, outputs))
        missing = sorted(set(rule.tables) - set(self.aliases.values()))
        if missing:
            raise QueryRefused(
                "overlap",
                "a list query returns the overlap of the rule's tables, so it joins all of them; "
                f"it does not read {', '.join(missing)}",
            )
        where = tree.args.get("where")
        if where is not None:
            self._scalar(
                where.this,
                rule.columns | rule.join_columns,
                "the query filters on {column}, which this list rule does not show",
                "filter",
            )
        for part in ("group", "having"):
            if tree.args.get(part) is not None:
                raise QueryRefused(
                    "aggregate", "a list rule lists overlapping rows; it does not group"
                )
        order = tree.args.get("order")
        for ordered in order.expressions if order is not None else []:
            key = ordered.this
            if isinstance(key, exp.Column) and not key.table and key.name.lower() in outputs:
                continue
            if isinstance(key, exp.Literal) and key.is_int:
                continue
            # Ordering by a column the list does not show would disclose its order.
            self._scalar(
                key,
                rule.columns,
                "the query orders by {column}, which this list rule does not show",
                "order",
            )
        return Checked(
            RuleKind.LIST,
            tree.sql("duckdb"),
            tuple(sorted(set(self.aliases.values()))),
            tuple(outputs),
        )


def avg_count(metric: Metric) -> str:
    """The extra result column holding the count of an average noised as sum over count."""
    return f"_accord_count_{metric.position}"


def _output_name(projection: exp.Expression, position: int, taken: list[str]) -> str:
    name = projection.alias_or_name if isinstance(projection, exp.Alias | exp.Column) else ""
    name = (name or f"column{position + 1}").lower()
    if name in taken or name.startswith("_accord"):
        raise QueryRefused(
            "output", f"output column {name} is named twice (or reserved): give it an alias"
        )
    return name


def _quote(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql("duckdb")
