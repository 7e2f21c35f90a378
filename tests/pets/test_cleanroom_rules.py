"""Decision tables for the analysis rules: which queries pass, and which check refuses the rest."""

from __future__ import annotations

import pytest

from accord.errors import DocumentFormatError
from accord.pets.checks import Observed, QueryRefused, check_query
from accord.pets.rules import AnalysisRule, parse_rule

pytestmark = pytest.mark.unit

SCHEMA = {
    "watch": ["member_id", "title_id", "watched_at", "seconds", "device"],
    "links": ["member_id", "chirp_id", "linked_at"],
    "exposures": ["person_id", "campaign"],
}

AGGREGATION = parse_rule(
    """
kind: aggregation
tables:
  watch: {person: member_id}
  links: {person: member_id}
dimensions: [watch.title_id, watch.watched_at, links.linked_at]
metrics:
  watch.seconds: [sum, avg]
  watch.member_id: [count_distinct]
join_columns: [watch.member_id, links.member_id]
min_people: 10
"""
)
NOISY = AGGREGATION.model_copy(
    update={
        "privacy": parse_rule(
            """
kind: aggregation
tables: {watch: {person: member_id}}
metrics: {watch.seconds: [sum]}
min_people: 10
privacy: {epsilon: 1.0, delta: 1e-8, max_rows: 3, bounds: {watch.seconds: [0, 7200]}}
"""
        ).privacy
    }
)

ALLOWED = "allowed"


@pytest.mark.parametrize(
    ("query", "outcome"),
    [
        # -- allowed ------------------------------------------------------------------------------
        ("SELECT title_id, count(*) AS n FROM watch GROUP BY title_id", ALLOWED),
        ("SELECT title_id, sum(seconds) AS s, avg(seconds) AS a FROM watch GROUP BY 1", ALLOWED),
        ("SELECT count(DISTINCT member_id) AS viewers FROM watch", ALLOWED),  # one group
        (
            "SELECT CAST(watched_at AS DATE) AS day, count(*) AS n FROM watch GROUP BY 1",
            ALLOWED,  # a scalar function of a dimension is a dimension
        ),
        (
            (
                "SELECT w.title_id, count(*) AS n FROM watch AS w JOIN links AS l "
                "ON w.member_id = l.member_id GROUP BY w.title_id"
            ),
            ALLOWED,  # a join on join columns
        ),
        (
            "SELECT title_id, count(*) AS n FROM watch WHERE title_id = 't1' GROUP BY title_id",
            ALLOWED,  # a filter on a dimension
        ),
        ("SELECT title_id, count(*) AS n FROM watch GROUP BY 1 ORDER BY n DESC LIMIT 5", ALLOWED),
        # -- SELECT * -----------------------------------------------------------------------------
        ("SELECT * FROM watch", "select-star"),
        ("SELECT w.* FROM watch AS w", "select-star"),
        # -- row-level output ---------------------------------------------------------------------
        ("SELECT title_id, seconds FROM watch", "row-level"),  # no aggregate at all
        ("SELECT member_id, count(*) AS n FROM watch GROUP BY 1", "row-level"),  # per person
        ("SELECT title_id, count(*) AS n FROM watch", "row-level"),  # a dimension not grouped
        ("SELECT device, count(*) AS n FROM watch GROUP BY device", "row-level"),  # not a dimension
        # -- joins --------------------------------------------------------------------------------
        (
            "SELECT count(*) AS n FROM watch AS w JOIN links AS l ON w.title_id = l.chirp_id",
            "join-column",
        ),
        ("SELECT count(*) AS n FROM watch, links", "join"),  # a comma (cross) join
        (
            (
                "SELECT count(*) AS n FROM watch AS w LEFT JOIN links AS l "
                "ON w.member_id = l.member_id"
            ),
            "join",  # only inner joins
        ),
        (
            (
                "SELECT count(*) AS n FROM watch AS w JOIN links AS l "
                "ON w.member_id = l.member_id AND w.seconds > 10"
            ),
            "join",  # a join condition that is not column = column
        ),
        # -- subqueries and CTEs that would sidestep the threshold --------------------------------
        (
            (
                "WITH one AS (SELECT title_id FROM watch WHERE member_id = 'm1') "
                "SELECT title_id, count(*) AS n FROM one GROUP BY 1"
            ),
            "subquery",
        ),
        ("SELECT count(*) AS n FROM (SELECT member_id FROM watch) AS t", "subquery"),
        (
            (
                "SELECT title_id, count(*) AS n FROM watch WHERE member_id IN "
                "(SELECT member_id FROM links) GROUP BY 1"
            ),
            "subquery",
        ),
        (
            (
                "SELECT title_id, count(*) AS n FROM watch GROUP BY 1 UNION "
                "SELECT title_id, count(*) AS n FROM watch GROUP BY 1"
            ),
            "select-only",  # a set operation is not a single SELECT
        ),
        ("SELECT title_id, count(*) OVER () AS n FROM watch", "window"),
        # -- metrics and functions ----------------------------------------------------------------
        ("SELECT max(seconds) AS m FROM watch", "function"),  # max would reveal one value
        ("SELECT count(seconds) AS m FROM watch", "metric"),  # seconds allows sum and avg only
        ("SELECT sum(member_id) AS m FROM watch", "metric"),
        ("SELECT sum(seconds) / count(*) AS m FROM watch", "metric"),  # around aggregates
        ("SELECT sum(seconds * 2) AS m FROM watch", "metric"),  # an expression, not a metric
        ("SELECT title_id, count(*) AS n FROM watch WHERE seconds > 100 GROUP BY 1", "filter"),
        (
            "SELECT title_id, count(*) AS n FROM watch WHERE member_id = 'm1' GROUP BY 1",
            "filter",  # singling out a person by a filter
        ),
        ("SELECT title_id, count(*) AS n FROM watch GROUP BY 1 HAVING count(*) > 1", "having"),
        ("SELECT md5(title_id) AS h, count(*) AS n FROM watch GROUP BY 1", "function"),
        # -- tables and statements ----------------------------------------------------------------
        ("SELECT count(*) AS n FROM exposures", "table"),  # not in the rule
        ("SELECT count(*) AS n FROM main.watch", "table"),
        ("SELECT count(*) AS n FROM read_csv('/etc/passwd')", "table"),  # a table function
        ("SELECT count(*) AS n FROM 'watch.csv'", "table"),  # a file
        ("SELECT count(*) AS n FROM unnest([1, 2]) AS u(x)", "table"),
        ("SELECT count(*) AS n FROM (VALUES (1)) AS v(x)", "table"),
        ("DELETE FROM watch", "select-only"),
        ("SELECT title_id, count(*) AS n FROM watch GROUP BY 1 QUALIFY n > 1", "clause"),
        ("SELECT count(*) AS n FROM watch USING SAMPLE 10%", "clause"),  # a sample of people
        ("SELECT count(*) AS n FROM watch TABLESAMPLE 10%", "clause"),
        ("SELECT count(*) AS n FROM watch; SELECT 1", "one-statement"),
        ("SELECT count(*) AS n FROM watch WHERE", "syntax"),
        (
            (
                "SELECT count(*) AS n FROM watch AS w JOIN links AS l ON w.member_id = l.member_id "
                "WHERE member_id = 'x'"
            ),
            "column",
        ),  # ambiguous
    ],
)
def test_aggregation_rule(query: str, outcome: str) -> None:
    if outcome == ALLOWED:
        checked = check_query(AGGREGATION, query, SCHEMA)
        assert "HAVING" in checked.sql  # the threshold is always applied
        return
    with pytest.raises(QueryRefused) as refused:
        check_query(AGGREGATION, query, SCHEMA)
    assert refused.value.check == outcome, refused.value.message
    assert refused.value.message  # a reason a person can read


@pytest.mark.parametrize(
    ("query", "outcome"),
    [
        ("SELECT title_id, sum(seconds) AS s FROM watch GROUP BY 1 ORDER BY 1", ALLOWED),
        ("SELECT title_id, sum(seconds) AS s FROM watch GROUP BY 1 ORDER BY s", "order"),
        ("SELECT title_id, sum(seconds) AS s FROM watch GROUP BY 1 LIMIT 3", "limit"),
    ],
)
def test_aggregation_rule_with_noise(query: str, outcome: str) -> None:
    """With noise, ordering and cutting by exact values would leak them."""
    if outcome == ALLOWED:
        checked = check_query(NOISY, query, SCHEMA)
        assert "_accord_rank <= 3" in checked.sql  # at most 3 rows per person
        assert "LEAST(GREATEST" in checked.sql.upper()  # values are clamped
        assert "HAVING" not in checked.sql  # the room chooses the groups, with noise
        # Each group counts the people whose rank-1 row is in it: one pass, no DISTINCT.
        assert "COUNT(_ACCORD_P0) FILTER(WHERE _ACCORD_K0 = 1)" in checked.sql.upper()
        assert "DISTINCT" not in checked.sql.upper()
        return
    with pytest.raises(QueryRefused) as refused:
        check_query(NOISY, query, SCHEMA)
    assert refused.value.check == outcome


def test_a_noisy_join_bounds_each_persons_rows_after_joining() -> None:
    query = (
        "SELECT w.title_id, sum(w.seconds) AS s FROM watch AS w JOIN links AS l "
        "ON w.member_id = l.member_id GROUP BY 1"
    )
    checked = check_query(NOISY, query, SCHEMA)
    assert checked.people_columns == 2
    sql = checked.sql.upper()
    assert "ROW_NUMBER() OVER (PARTITION BY _ACCORD_P0" in sql
    assert "ROW_NUMBER() OVER (PARTITION BY _ACCORD_P1" in sql
    assert "_ACCORD_N0 <= 3 AND _ACCORD_N1 <= 3" in sql
    # Each person of each table is counted in the group of their first row in that random order.
    assert "COUNT(_ACCORD_P0) FILTER(WHERE _ACCORD_N0 = 1)" in sql
    assert "COUNT(_ACCORD_P1) FILTER(WHERE _ACCORD_N1 = 1)" in sql
    assert "DISTINCT" not in sql


def test_a_noisy_filtered_query_counts_each_person_at_their_first_row_kept() -> None:
    """A filter may drop a person's rank-1 row; their first row the filter keeps counts instead."""
    query = "SELECT title_id, sum(seconds) AS s FROM watch WHERE title_id <> 't0' GROUP BY 1"
    sql = check_query(NOISY, query, SCHEMA).sql.upper()
    assert "MIN(_ACCORD_K0) OVER (PARTITION BY _ACCORD_P0) AS _ACCORD_M0" in sql
    assert "COUNT(_ACCORD_P0) FILTER(WHERE _ACCORD_K0 = _ACCORD_M0)" in sql


LIST = parse_rule(
    """
kind: list
tables:
  watch: {person: member_id}
  links: {person: member_id}
columns: [watch.title_id, links.chirp_id]
join_columns: [watch.member_id, links.member_id]
"""
)


@pytest.mark.parametrize(
    ("query", "outcome"),
    [
        (
            (
                "SELECT w.title_id, l.chirp_id FROM watch AS w JOIN links AS l "
                "ON w.member_id = l.member_id"
            ),
            ALLOWED,
        ),
        (
            (
                "SELECT DISTINCT l.chirp_id FROM watch AS w JOIN links AS l "
                "ON w.member_id = l.member_id WHERE w.title_id = 't1'"
            ),
            ALLOWED,
        ),
        ("SELECT title_id FROM watch", "overlap"),  # not the overlap: one table only
        (
            "SELECT w.seconds FROM watch AS w JOIN links AS l ON w.member_id = l.member_id",
            "list-column",
        ),
        (
            "SELECT count(*) AS n FROM watch AS w JOIN links AS l ON w.member_id = l.member_id",
            "aggregate",
        ),
        ("SELECT * FROM watch AS w JOIN links AS l ON w.member_id = l.member_id", "select-star"),
        (
            "SELECT w.title_id FROM watch AS w JOIN links AS l ON w.title_id = l.chirp_id",
            "join-column",
        ),
        (
            (
                "SELECT w.title_id FROM watch AS w JOIN links AS l ON w.member_id = l.member_id "
                "WHERE w.seconds > 3"
            ),
            "filter",
        ),
        (
            (
                "SELECT w.title_id FROM watch AS w JOIN links AS l ON w.member_id = l.member_id "
                "ORDER BY w.seconds"
            ),
            "order",  # ordering by a hidden column discloses its order
        ),
        (
            (
                "SELECT w.title_id AS t FROM watch AS w JOIN links AS l "
                "ON w.member_id = l.member_id ORDER BY t, l.chirp_id LIMIT 10"
            ),
            ALLOWED,
        ),
    ],
)
def test_list_rule(query: str, outcome: str) -> None:
    if outcome == ALLOWED:
        assert check_query(LIST, query, SCHEMA).outputs
        return
    with pytest.raises(QueryRefused) as refused:
        check_query(LIST, query, SCHEMA)
    assert refused.value.check == outcome, refused.value.message


CUSTOM = parse_rule(
    """
kind: custom
tables:
  watch: {person: member_id}
templates:
  viewers_of_title: >
    SELECT title_id, count(DISTINCT member_id) AS viewers FROM watch
    WHERE title_id = $title GROUP BY title_id HAVING count(DISTINCT member_id) >= 25
"""
)
TEMPLATE = (
    "SELECT title_id, count(DISTINCT member_id) AS viewers FROM watch "
    "WHERE title_id = {title} GROUP BY title_id HAVING count(DISTINCT member_id) >= {k}"
)


@pytest.mark.parametrize(
    ("query", "outcome"),
    [
        (TEMPLATE.format(title="'t1'", k=25), ALLOWED),  # the placeholder filled with a value
        (TEMPLATE.format(title="'t2'", k=25).lower(), ALLOWED),  # case and spacing do not matter
        (TEMPLATE.format(title="'t1'", k=1), "template"),  # a fixed value changed
        (TEMPLATE.format(title="title_id", k=25), "template"),  # a column for the value
        ("SELECT title_id FROM watch", "template"),
        ("SELECT * FROM watch", "template"),
    ],
)
def test_custom_rule(query: str, outcome: str) -> None:
    if outcome == ALLOWED:
        assert check_query(CUSTOM, query, SCHEMA).template == "viewers_of_title"
        return
    with pytest.raises(QueryRefused) as refused:
        check_query(CUSTOM, query, SCHEMA)
    assert refused.value.check == outcome


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("kind: aggregation\ntables: {t: {person: p}}\nmetrics: {t.x: [sum]}\n", "min_people"),
        ("kind: aggregation\ntables: {t: {person: p}}\nmin_people: 5\n", "metric"),
        (
            "kind: aggregation\ntables: {t: {person: p}}\nmetrics: {u.x: [sum]}\nmin_people: 5\n",
            "table the rule does not list",
        ),
        (
            (
                "kind: aggregation\ntables: {t: {person: p}}\nmetrics: {t.x: [sum]}\n"
                "min_people: 5\nprivacy: {epsilon: 1, delta: 1e-8}\n"
            ),
            "bounds must clamp",  # a noisy sum needs bounds for its sensitivity
        ),
        (
            (
                "kind: aggregation\ntables: {t: {person: p}}\nmetrics: {t.x: [count]}\n"
                "min_people: 5\nprivacy: {epsilon: 1}\n"
            ),
            # min_people on noisy counts of people: which groups show needs a delta
            "privacy needs a delta above 0",
        ),
        (
            (
                "kind: aggregation\ntables: {t: {person: p}}\nmetrics: {t.x: [count]}\n"
                "min_people: 5\nprivacy: {epsilon: 1, delta: 0}\n"
            ),
            "privacy needs a delta above 0",  # a delta of 0 is no delta
        ),
        (
            (
                "kind: aggregation\ntables: {t: {person: p}}\nmetrics: {t.x: [count]}\n"
                "min_people: 5\nprivacy: {epsilon: 1, delta: 1e-8, selection_epsilon: 1}\n"
            ),
            "must be less than epsilon",  # the aggregates need some epsilon too
        ),
        (
            (
                "kind: aggregation\ntables: {t: {person: p}}\nmetrics: {t.x: [count]}\n"
                "min_people: 5\nprivacy: {epsilon: 1, mechanism: gaussian}\n"
            ),
            "delta",
        ),
        ("kind: list\ntables: {t: {person: p}}\n", "columns"),
        ("kind: custom\ntables: {t: {person: p}}\n", "template"),
        ("kind: aggregation\ntables: {t: {person: p}}\nmetrics: {t.x: [median]}\n", "should be"),
        ("kind: joins\ntables: {t: {person: p}}\n", "kind"),
        ("kind: list\ntables: {t: {person: p}}\ncolumns: [x]\n", "table.column"),
    ],
)
def test_bad_rules_are_refused_with_the_place(text: str, problem: str) -> None:
    with pytest.raises(DocumentFormatError) as refused:
        parse_rule(text, source="rule.yaml")
    assert problem in str(refused.value)
    assert "rule.yaml" in str(refused.value)


def test_rules_are_plain_data() -> None:
    assert isinstance(AGGREGATION, AnalysisRule)
    assert AGGREGATION.person_of("watch") == "member_id"


@pytest.mark.parametrize(
    ("observed", "clamped", "bounded"),
    [
        (None, True, True),  # nothing known: clamp and bound
        (Observed({"seconds": (0, 7200)}, most_rows=3), False, False),  # both would be no-ops
        (Observed({"seconds": (-1, 10)}, most_rows=3), True, False),  # a value below the bounds
        (Observed({"seconds": (0, 7201)}, most_rows=3), True, False),  # a value above them
        (Observed({"seconds": (0, 10)}, most_rows=4), False, True),  # someone has 4 rows
    ],
)
def test_work_that_cannot_change_the_answer_is_left_out(
    observed: Observed | None, clamped: bool, bounded: bool
) -> None:
    query = "SELECT title_id, sum(seconds) AS s FROM watch GROUP BY 1"
    seen = {"watch": observed} if observed is not None else None
    sql = check_query(NOISY, query, SCHEMA, seen).sql
    assert ("LEAST(GREATEST" in sql.upper()) is clamped
    assert ("_accord_rank <= 3" in sql) is bounded


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SELECT * FROM watch", "SELECT * is not allowed: name the columns"),
        (
            "SELECT member_id, title_id FROM watch",
            "watch.member_id is not a dimension of this rule: showing it is row-level output",
        ),
        (
            "SELECT count(*) AS n FROM watch AS w JOIN links AS l ON w.title_id = l.chirp_id",
            "the query joins on watch.title_id, which is not a join column of this rule",
        ),
        (
            "SELECT count(*) AS n FROM (SELECT member_id FROM watch WHERE title_id = 't') AS one",
            "a subquery is not allowed: it could compute row-level or under-threshold results",
        ),
        (
            "WITH one AS (SELECT * FROM watch) SELECT count(*) AS n FROM one",
            "a CTE (WITH) is not allowed",
        ),
    ],
)
def test_the_reasons_say_what_is_wrong(query: str, reason: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        check_query(AGGREGATION, query, SCHEMA)
    assert reason in str(refused.value)
