"""Reads, aggregates and writes on a party's database: only declared fields, only allowed people."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import String, func, inspect, select, text

from accord.errors import InvalidInput, StoreError
from accord.filters import Group
from accord.policy import Policy
from accord.sources import Allowed, Source, parse
from accord.sources.allowed import FEW
from accord.store.people import BATCH
from builders import activate, agreement, clause, request
from sources.conftest import (
    DATASET,
    Databases,
    messages,
    ratings,
    thread_participants,
    titles,
    watch_events,
)
from sources.world import (
    ALLOWED,
    AT,
    CONSENTS,
    PEOPLE,
    WATCHED,
    Streamed,
    consent_filter,
    facts,
    insert,
    load_store,
)

pytestmark = pytest.mark.integration

DAY = datetime(2026, 5, 1, 20, 0)

# Three viewings each by m1..m6 (m6 is not a person the store knows), of titles t0..t2.
EVENTS = [
    {
        "event_id": 10 * p + i,
        "member_id": f"m{p}",
        "title_id": f"t{(p + i) % 3}",
        "device": "tv",
        "watched_at": DAY + timedelta(days=i),
        "secret_note": "never read",
    }
    for p in range(1, 7)
    for i in range(3)
]


@pytest.fixture
def world(dbs: Databases) -> Databases:
    load_store(dbs, PEOPLE, CONSENTS)
    insert(dbs, watch_events, EVENTS)
    return dbs


def test_reads_only_the_named_fields_of_allowed_people(world: Databases) -> None:
    f = consent_filter()
    assert f.allowed(facts(PEOPLE, CONSENTS)) == ALLOWED  # the reference agrees with the data
    with world.sessions() as session:
        columns, rows = world.source.read_all(
            "watch_events", ["event_id", "watch_events.title_id"], Allowed.by_filter(session, f)
        )
    assert columns == ("event_id", "title_id")
    expected = {(e["event_id"], e["title_id"]) for e in EVENTS if e["member_id"] in ALLOWED}
    assert len(rows) == len(expected) == 9
    assert set(rows) == expected
    assert all(len(r) == 2 for r in rows)


@pytest.mark.parametrize(
    "strangers",
    [
        FEW - len(ALLOWED),  # as many ids as are bound as parameters
        FEW - len(ALLOWED) + 1,  # one more: they go in a temporary table
    ],
)
def test_a_few_ids_or_many_read_the_same_rows(world: Databases, strangers: int) -> None:
    ids = [*ALLOWED, *(f"nobody-{n}" for n in range(strangers))]
    assert (Allowed(ids).few(String()) is None) == (len(ids) > FEW)
    _, rows = world.source.read_all("watch_events", ["event_id"], Allowed(ids))
    assert sorted(r[0] for r in rows) == sorted(
        e["event_id"] for e in EVENTS if e["member_id"] in ALLOWED
    )


TITLED = DATASET.replace(
    "    person: member_id\n", "    person: member_id\n    title: title_id\n", 1
)
# m1 withheld t1 case by case; m3 (not otherwise allowed) consented to t0 once; m9 has no rows.
VERDICTS = (("m1", "t1", False), ("m3", "t0", True), ("m9", "t0", True))


def _by_title(e: dict[str, Any], people: list[str]) -> bool:
    """The statute's verdict on one viewing, stated directly: the person's, unless their title
    has a verdict of its own."""
    own = {(p, title): ok for p, title, ok in VERDICTS}
    return own.get((e["member_id"], e["title_id"]), e["member_id"] in people)


@pytest.mark.parametrize("bound", [True, False])  # a few ids as parameters, or streamed
def test_title_verdicts_judge_each_row_by_its_own_title(world: Databases, bound: bool) -> None:
    people = ["m1", "m2"]
    allowed = Allowed(people if bound else Streamed(people), party="reelix", titles=VERDICTS)
    source = Source(world.party, parse(TITLED))
    with source.read("watch_events", ["event_id", "member_id", "title_id"], allowed) as rows:
        got = sorted(tuple(r) for r in rows)
        granted = rows.granted()
    expected = sorted(
        (e["event_id"], e["member_id"], e["title_id"]) for e in EVENTS if _by_title(e, people)
    )
    assert got == expected
    assert ("m1", "t1") not in {(m, title) for _, m, title in got}
    assert granted == {("m3", "t0")}  # the rows a granting verdict let through, by pair
    counted = source.aggregate("watch_events", ["title_id"], {"views": "count"}, 1, allowed)
    views = Counter(e["title_id"] for e in EVENTS if _by_title(e, people))
    assert dict(counted.rows) == dict(views)


def test_title_verdicts_need_a_title_field(world: Databases) -> None:
    allowed = Allowed(["m1"], party="reelix", titles=VERDICTS)
    with pytest.raises(InvalidInput, match="names its title field"):
        world.source.read_all("watch_events", ["event_id"], allowed)


def test_nobody_allowed_reads_nothing(world: Databases) -> None:
    assert world.source.read_all("watch_events", ["title_id"], Allowed([])) == (("title_id",), [])


def test_a_decision_of_the_policy_filters_the_read(world: Databases) -> None:
    """Watch activity shared to Chirp: the policy's own filter (with VPPA for US members)."""
    c = clause(
        direction="recipient_to_provider",
        categories=[WATCHED],
        fields=["watch_events.title_id"],
    )
    policy = Policy([activate(agreement(c))])
    decision = policy.decide(request(requester="chirp", categories=frozenset({WATCHED}), at=AT))
    assert decision.allowed, decision.reason
    f = decision.filter
    assert f is not None
    assert f.controller == "reelix"
    people = facts(PEOPLE, CONSENTS)
    expected_people = f.allowed(people)
    assert "m2" not in expected_people  # a US member without consent
    with world.sessions() as session:
        columns, rows = world.source.read_all(
            "watch_events", sorted(decision.fields), Allowed.by_filter(session, f)
        )
    assert columns == ("title_id",)
    assert Counter(r[0] for r in rows) == Counter(
        e["title_id"] for e in EVENTS if e["member_id"] in expected_people
    )


@pytest.mark.parametrize(
    ("collection", "fields", "where", "message"),
    [
        # a column of the table that the declaration does not list
        (
            "watch_events",
            ["secret_note"],
            None,
            "dataset reelix: collection watch_events: field 'secret_note' is not declared",
        ),
        # a field of another collection
        ("watch_events", ["messages.body"], None, "field 'messages.body' belongs to another"),
        # nothing asked for
        ("watch_events", [], None, "a read names at least one field"),
        # a collection not declared
        ("watch_event", ["title_id"], None, "declares no collection 'watch_event'; did you mean"),
        # a condition on a field not declared
        ("watch_events", ["title_id"], {"secret_note": "x"}, "condition field 'secret_note'"),
        # names that would be SQL if they were not checked
        ("watch_events", ["title_id; DROP TABLE x"], None, "field 'title_id; DROP TABLE x'"),
    ],
)
def test_only_declared_fields_and_collections(
    world: Databases,
    collection: str,
    fields: list[str],
    where: dict[str, Any] | None,
    message: str,
) -> None:
    with pytest.raises(InvalidInput) as raised:
        world.source.read_all(collection, fields, Allowed(ALLOWED), where=where)
    assert message in str(raised.value)


def test_conditions_restrict_rows_and_none_means_null(world: Databases) -> None:
    insert(world, watch_events, [{"event_id": 999, "member_id": "m1", "title_id": "t9"}])
    _, rows = world.source.read_all(
        "watch_events", ["event_id"], Allowed(ALLOWED), where={"device": None}
    )
    assert rows == [(999,)]
    _, rows = world.source.read_all(
        "watch_events", ["event_id"], Allowed(ALLOWED), where={"device": "tv", "title_id": "t0"}
    )
    expected = {
        (e["event_id"],) for e in EVENTS if e["member_id"] in ALLOWED and e["title_id"] == "t0"
    }
    assert set(rows) == expected
    assert expected


THREADS = {
    "t-13": ["m1", "m3"],  # both allowed
    "t-12": ["m1", "m2"],  # m2 is not
    "t-2": ["m2"],  # nobody allowed
    "t-16": ["m1", "m6"],  # m6 is not a person the store knows
    "t-135": ["m1", "m3", "m5"],  # all allowed
}
MESSAGES = [
    {"message_id": i, "thread_id": t, "sender": members[0], "body": f"{t}/{via}", "sent_via": via}
    for i, (t, members, via) in enumerate(
        (t, m, via) for t, m in THREADS.items() for via in ("reelix", "chirp")
    )
]


@pytest.mark.parametrize(
    ("group", "threads"),
    [
        # reading message contents: every participant must be let through
        (Group.EVERY_PARTICIPANT, {"t-13", "t-135"}),
        # at least one participant let through
        (Group.EACH, {"t-13", "t-12", "t-16", "t-135"}),
    ],
)
@pytest.mark.parametrize("bound", [True, False], ids=["bound", "temporary-table"])
def test_rows_about_groups(world: Databases, group: Group, threads: set[str], bound: bool) -> None:
    insert(world, messages, MESSAGES)
    insert(
        world,
        thread_participants,
        [{"thread_id": t, "person_id": p} for t, members in THREADS.items() for p in members],
    )
    # A thread with no participants listed is never let through.
    insert(world, messages, [{"message_id": 99, "thread_id": "t-none", "body": "x"}])
    f = consent_filter(group=group)
    with world.sessions() as session:
        source_allowed = Allowed.by_filter(session, f)
        ids = frozenset(source_allowed.people)
        source_allowed = Allowed(ids if bound else Streamed(ids), group, "reelix")
        columns, rows = world.source.read_all("messages", ["thread_id", "body"], source_allowed)
        assert columns == ("thread_id", "body")
        assert {r[0] for r in rows} == threads
        assert len(rows) == 2 * len(threads)
        # The Inbox API redone: only the messages Reelix itself sent.
        _, sent = world.source.read_all(
            "messages", ["body"], source_allowed, where={"sent_via": "reelix"}
        )
    assert sorted(r[0] for r in sent) == sorted(f"{t}/reelix" for t in threads)


# The two ways ids reach the party's database: bound as parameters, or in a temporary table.
AS_GIVEN = pytest.mark.parametrize("given", [list, Streamed], ids=["bound", "temporary-table"])


@AS_GIVEN
def test_ids_are_matched_as_the_column_s_type(world: Databases, given: Any) -> None:
    insert(world, ratings, [{"member_no": n, "stars": n} for n in range(1, 6)])
    _, rows = world.source.read_all("ratings", ["stars"], Allowed(given(["1", "3", "x", "3"])))
    assert sorted(rows) == [(1,), (3,)]


def test_an_id_holding_a_nul_is_matched_whole_or_refused(world: Databases) -> None:
    """SQLite's JSON functions would cut ``m1\\x00x`` at its NUL, to ``m1``: such ids reach the
    temporary table bound one by one, so ``m1``'s rows stay out. PostgreSQL refuses a NUL in text:
    the read fails with a clear error and releases nothing."""
    allowed = Allowed(Streamed(["m1\x00x"]))
    if world.party.dialect.name != "sqlite":
        with pytest.raises(StoreError, match="NUL"):
            world.source.read_all("watch_events", ["title_id"], allowed)
        return
    insert(
        world,
        watch_events,
        [
            {"event_id": 1, "member_id": "m1", "title_id": "t1"},
            {"event_id": 2, "member_id": "m1\x00x", "title_id": "t2"},
        ],
    )
    _, rows = world.source.read_all("watch_events", ["title_id"], allowed)
    assert rows == [("t2",)]


@pytest.mark.parametrize(
    "odd",
    [
        "m\tx",  # a tab: COPY's column separator
        "m\\x",  # a backslash: COPY's escape
        "m\nx",  # a line break: COPY's row separator
        "m\rx",
        "m\\.",  # COPY's old end-of-data mark, once escaped
        "",  # empty, not null
    ],
)
def test_streamed_ids_reach_the_read_whole_whatever_they_hold(world: Databases, odd: str) -> None:
    """Many ids cross to the party's database as text in one piece (COPY's text format on
    PostgreSQL, JSON on SQLite); an id that would need escaping there still matches only its
    own rows."""
    insert(
        world,
        watch_events,
        [
            {"event_id": 1, "member_id": odd, "title_id": "t1"},
            {"event_id": 2, "member_id": "m", "title_id": "t2"},
            {"event_id": 3, "member_id": "x", "title_id": "t3"},
            {"event_id": 4, "member_id": "zz", "title_id": "t4"},
        ],
    )
    allowed = Allowed(Streamed([odd, "zz", odd]))
    _, rows = world.source.read_all("watch_events", ["title_id"], allowed)
    assert sorted(rows) == [("t1",), ("t4",)]


def temporary_tables(dbs: Databases) -> list[str]:
    with dbs.party.connect() as conn:
        if conn.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_temp_master WHERE type = 'table'"
        else:
            query = "SELECT tablename FROM pg_tables WHERE tablename LIKE 'accord_allowed_%'"
        return list(conn.execute(text(query)).scalars())


@AS_GIVEN
def test_rows_stream_in_batches_and_nothing_is_left_behind(world: Databases, given: Any) -> None:
    tables = set(inspect(world.party).get_table_names())
    allowed = Allowed(given(ALLOWED))
    with world.source.read("watch_events", ["event_id"], allowed, batch_size=2) as rows:
        assert rows.columns == ("event_id",)
        batches = [list(b) for b in rows.batches()]
    assert [len(b) for b in batches] == [2, 2, 2, 2, 1]
    assert len({r[0] for b in batches for r in b}) == 9
    assert temporary_tables(world) == []
    assert set(inspect(world.party).get_table_names()) == tables


def test_an_error_in_the_caller_s_block_is_not_disguised(world: Databases) -> None:
    def fail_midway() -> None:
        with world.source.read("watch_events", ["event_id"], Allowed(ALLOWED)) as rows:
            next(iter(rows))
            raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        fail_midway()
    assert temporary_tables(world) == []


def test_people_of_another_party_are_refused(world: Databases) -> None:
    with pytest.raises(InvalidInput, match="the allowed people are chirp's"):
        world.source.read_all("watch_events", ["event_id"], Allowed(["m1"], party="chirp"))


def test_database_errors_become_store_errors(world: Databases, tmp_path: Any) -> None:
    from sqlalchemy import create_engine

    gone = Source(create_engine(f"sqlite:///{tmp_path}/no/such/dir/x.db"), world.source.dataset)
    with pytest.raises(StoreError, match=r"reading reelix\.watch_events failed"):
        gone.read_all("watch_events", ["event_id"], Allowed(ALLOWED))
    with pytest.raises(StoreError, match=r"writing reelix\.watch_events failed"):
        gone.write("watch_events", [{"event_id": 1, "member_id": "m1"}])


def test_a_declaration_that_does_not_match_the_database(world: Databases) -> None:
    world.source.check()
    wrong = parse(
        DATASET.replace("{name: device,", "{name: devices,").replace(
            "members: thread_participants", "members: participants"
        )
    )
    with pytest.raises(InvalidInput, match="table watch_events has no column 'devices'"):
        Source(world.party, wrong).check()
    with pytest.raises(InvalidInput, match="group members: the database has no table"):
        Source(world.party, wrong).read_all("messages", ["body"], Allowed(ALLOWED))


# --- writes ---------------------------------------------------------------------------------


def event_count(dbs: Databases) -> int:
    with dbs.party.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(watch_events)).scalar_one())


def rows_from(start: int, n: int) -> list[dict[str, Any]]:
    return [
        {"event_id": start + i, "member_id": f"m{i % 5 + 1}", "title_id": "t1"} for i in range(n)
    ]


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        # a key the declaration does not list, in the third row
        ({"secret_note": "x"}, InvalidInput, "row 2: field 'secret_note' is not declared"),
        # a row that does not say whom it is about
        ({"member_id": None}, None, None),
        # keys differing from the first row's
        ({"device": "tv"}, InvalidInput, "every row needs the same fields as the first"),
        # the database refuses: a repeated primary key
        ({"event_id": 1000}, StoreError, "writing reelix.watch_events failed"),
    ],
)
def test_writes_are_all_or_nothing(
    dbs: Databases, bad: dict[str, Any], error: type[Exception] | None, message: str | None
) -> None:
    rows = rows_from(1000, 3)
    if bad == {"member_id": None}:
        rows[2].pop("member_id")
        error, message = InvalidInput, "row 2 does not say whom it is about (field 'member_id')"
    else:
        rows[2].update(bad)
    assert error is not None
    with pytest.raises(error) as raised:
        dbs.source.write("watch_events", rows)
    assert message is not None
    assert message in str(raised.value)
    assert event_count(dbs) == 0


def test_a_failure_after_many_batches_writes_nothing(dbs: Databases) -> None:
    rows = rows_from(0, 2 * BATCH + 10)
    rows.append(dict(rows[0]))  # the last row repeats the first's key
    with pytest.raises(StoreError):
        dbs.source.write("watch_events", iter(rows))
    assert event_count(dbs) == 0
    assert dbs.source.write("watch_events", iter(rows[:-1])) == 2 * BATCH + 10
    assert event_count(dbs) == 2 * BATCH + 10


def test_written_rows_are_read_back(dbs: Databases) -> None:
    assert dbs.source.write("watch_events", rows_from(0, 5)) == 5
    assert dbs.source.write("watch_events", []) == 0
    _, rows = dbs.source.read_all("watch_events", ["event_id", "member_id"], Allowed(["m2"]))
    assert rows == [(1, "m2")]


# --- aggregates -----------------------------------------------------------------------------


def test_aggregate_drops_groups_smaller_than_the_threshold(world: Databases) -> None:
    extra = [  # m1 watches t9 five times: five rows, one person
        {"event_id": 500 + i, "member_id": "m1", "title_id": "t9", "watched_at": DAY}
        for i in range(5)
    ]
    insert(world, watch_events, extra)
    events = [e for e in [*EVENTS, *extra] if e["member_id"] in ALLOWED]
    result = world.source.aggregate(
        "watch_events",
        ["title_id"],
        {"views": "count", "viewers": "count_distinct(member_id)", "on": "count(device)"},
        min_group_size=3,
        allowed=Allowed(ALLOWED),
    )
    assert result.columns == ("title_id", "views", "viewers", "on")
    expected = []
    titles = sorted({e["title_id"] for e in events})
    for title in titles:
        these = [e for e in events if e["title_id"] == title]
        viewers = {e["member_id"] for e in these}
        if len(viewers) >= 3:
            on = sum(1 for e in these if e.get("device") is not None)
            expected.append((title, len(these), len(viewers), on))
    assert result.rows == expected
    assert [r[0] for r in result.rows] == ["t0", "t1", "t2"]
    assert result.suppressed == 1  # t9, watched by m1 alone
    # With a threshold of one, nothing is suppressed.
    everything = world.source.aggregate(
        "watch_events", ["title_id"], {"views": "count"}, 1, Allowed(ALLOWED)
    )
    assert everything.suppressed == 0
    assert ("t9", 5) in everything.rows


def test_aggregate_with_no_grouping_is_one_group(world: Databases) -> None:
    viewers = {e["member_id"] for e in EVENTS if e["member_id"] in ALLOWED}
    total = world.source.aggregate(
        "watch_events", [], {"views": "count"}, len(viewers), Allowed(ALLOWED)
    )
    assert total.columns == ("views",)
    assert total.rows == [(sum(1 for e in EVENTS if e["member_id"] in ALLOWED),)]
    assert total.suppressed == 0
    # One person more than there are: the single group is held back.
    held = world.source.aggregate(
        "watch_events", [], {"views": "count"}, len(viewers) + 1, Allowed(ALLOWED)
    )
    assert held.rows == []
    assert held.suppressed == 1


def test_aggregate_by_day_with_a_condition(world: Databases) -> None:
    result = world.source.aggregate(
        "watch_events",
        ["day(watched_at)"],
        {"views": "count"},
        2,
        Allowed(ALLOWED),
        where={"title_id": "t0"},
    )
    assert result.columns == ("watched_at", "views")
    counts = Counter(
        e["watched_at"].date()
        for e in EVENTS
        if e["member_id"] in ALLOWED and e["title_id"] == "t0"
    )
    kept = {str(day): n for day, n in counts.items() if n >= 2}
    assert {str(day): n for day, n in result.rows} == kept
    assert result.suppressed == sum(1 for n in counts.values() if n < 2)
    assert result.suppressed + len(result.rows) == len(counts)


@pytest.mark.parametrize(
    ("group_by", "measures", "k", "message"),
    [
        ([], {"n": "median(stars)"}, 2, "measure n: 'median(stars)' is not count"),
        ([], {"n": "sum"}, 2, "measure n: 'sum' is not count"),
        ([], {"n; DROP": "count"}, 2, "measure name 'n; DROP' is not an identifier"),
        ([], {"n": "sum(secret_note)"}, 2, "field of measure n 'secret_note' is not declared"),
        (["secret_note"], {"n": "count"}, 2, "group_by field 'secret_note' is not declared"),
        (["title_id"], {"title_id": "count"}, 2, "repeated output columns: title_id"),
        (["title_id"], {"n": "count"}, 0, "min_group_size must be at least 1"),
    ],
)
def test_aggregate_refuses_what_it_cannot_do(
    world: Databases, group_by: list[str], measures: dict[str, str], k: int, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        world.source.aggregate("watch_events", group_by, measures, k, Allowed(ALLOWED))
    assert message in str(raised.value)


def test_aggregate_over_groups_counts_distinct_groups(world: Databases) -> None:
    insert(world, messages, MESSAGES)
    insert(
        world,
        thread_participants,
        [{"thread_id": t, "person_id": p} for t, members in THREADS.items() for p in members],
    )
    result = world.source.aggregate(
        "messages",
        ["sent_via"],
        {"n": "count"},
        2,
        Allowed(ALLOWED, Group.EVERY_PARTICIPANT),
    )
    assert result.rows == [("chirp", 2), ("reelix", 2)]
    result = world.source.aggregate(
        "messages", ["sent_via"], {"n": "count"}, 3, Allowed(ALLOWED, Group.EVERY_PARTICIPANT)
    )
    assert result.rows == []
    assert result.suppressed == 2


def test_a_catalogue_about_no_person_is_read_whole(dbs: Databases) -> None:
    catalogue = [{"title_id": f"t{i}", "genre": "drama" if i % 2 else "comedy"} for i in range(5)]
    insert(dbs, titles, catalogue)
    _, rows = dbs.source.read_all("titles", ["title_id"], Allowed([]))
    assert sorted(rows) == [(f"t{i}",) for i in range(5)]
    result = dbs.source.aggregate("titles", ["genre"], {"n": "count"}, 3, Allowed([]))
    assert result.rows == [("comedy", 3)]  # counted in rows: drama has two
    assert result.suppressed == 1
    assert dbs.source.write("titles", [{"title_id": "t9"}]) == 1


@AS_GIVEN
def test_date_time_columns_read_as_sqlalchemy_reads_them(world: Databases, given: Any) -> None:
    _, rows = world.source.read_all(
        "watch_events", ["event_id", "watched_at"], Allowed(given(ALLOWED))
    )
    expected = {(e["event_id"], e["watched_at"]) for e in EVENTS if e["member_id"] in ALLOWED}
    assert set(rows) == expected
    assert all(isinstance(watched, datetime) for _, watched in rows)


def test_a_read_of_one_kind_takes_each_request_s_own_values(world: Databases) -> None:
    # The same kind of read (fields, conditions' fields, one id), prepared once, for others.
    for person, title in [("m1", "t1"), ("m3", "t0"), ("m3", "t1"), ("m1", "t2")]:
        _, rows = world.source.read_all(
            "watch_events", ["event_id"], Allowed([person]), where={"title_id": title}
        )
        expected = [
            (e["event_id"],) for e in EVENTS if e["member_id"] == person and e["title_id"] == title
        ]
        assert rows == expected
        assert expected


def test_whom_the_rows_are_about_is_asked_of_the_same_snapshot(world: Databases) -> None:
    """A bulk read may ask the database whom its rows are about instead of carrying the subject
    in every row: the answer is the subjects of exactly the rows read, even if another writer
    adds a row for an allowed person after the rows were read."""
    insert(
        world,
        watch_events,
        [
            {"event_id": 901, "member_id": "w1", "title_id": "t1"},
            {"event_id": 902, "member_id": "w1", "title_id": "t2"},
            {"event_id": 903, "member_id": "w2", "title_id": "t1"},
            {"event_id": 904, "member_id": "w4", "title_id": "t1"},  # not allowed
        ],
    )
    allowed = Allowed(Streamed(["w1", "w2", "w3"]))
    with world.source.read("watch_events", ["title_id"], allowed, whom=True) as read:
        rows = [tuple(r) for r in read]
        insert(world, watch_events, [{"event_id": 905, "member_id": "w3", "title_id": "t9"}])
        whom = read.whom()
    assert sorted(rows) == [("t1",), ("t1",), ("t2",)]
    assert sorted(whom) == ["w1", "w2"]
    # A new read sees the new row and its person.
    with world.source.read("watch_events", ["title_id"], allowed, whom=True) as read:
        assert sorted(tuple(r) for r in read) == [("t1",), ("t1",), ("t2",), ("t9",)]
        assert sorted(read.whom()) == ["w1", "w2", "w3"]


def test_whom_is_known_only_once_every_row_is_read(world: Databases) -> None:
    """Whom a bulk read's rows are about is the subjects of all of them: asked before the last
    row is read, the read refuses to answer rather than name too few people; a person whose
    rows were all left out by the read's condition is not among them."""
    insert(
        world,
        watch_events,
        [
            {"event_id": 911, "member_id": "w1", "title_id": "t1", "device": "tv"},
            {"event_id": 912, "member_id": "w2", "title_id": "t2", "device": "tv"},
            {"event_id": 913, "member_id": "w3", "title_id": "t3", "device": "phone"},
        ],
    )
    allowed = Allowed(Streamed(["w1", "w2", "w3"]))
    with world.source.read(
        "watch_events", ["title_id"], allowed, where={"device": "tv"}, whom=True, batch_size=1
    ) as read:
        batches = read.batches()
        assert list(next(batches)) in ([("t1",)], [("t2",)])
        with pytest.raises(InvalidInput, match="once every row"):
            read.whom()
        rest = [tuple(r) for batch in batches for r in batch]
        assert len(rest) == 1
        assert sorted(read.whom()) == ["w1", "w2"]


def test_whom_is_asked_only_of_a_read_made_to_say_it(world: Databases) -> None:
    with world.source.read("watch_events", ["title_id"], Allowed(Streamed(["w1"]))) as read:
        list(read)
        with pytest.raises(InvalidInput, match="whom=True"):
            read.whom()
