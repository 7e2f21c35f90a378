"""The generated databases: deterministic, shaped like the services they stand for, consistent."""

from __future__ import annotations

import hashlib
import itertools
import math
import sqlite3
import statistics
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from accord.consent import Scope, SignalSource
from accord.scenario.generate import Written, friend_graph, write_databases, zipf_weights
from accord.scenario.population import CHIRP, REELIX, TITLES, generate, homes, person_id
from conftest import AT, PEOPLE, SEED


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path)) as db:
        yield db


def contents_hash(path: Path) -> str:
    """A digest of every row of every table, in key order."""
    digest = hashlib.sha256()
    with connect(path) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in sorted(t for t in tables if not t.startswith("sqlite_")):
            digest.update(table.encode())
            for row in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):  # noqa: S608
                digest.update(repr(row).encode())
    return digest.hexdigest()


def column(db: sqlite3.Connection, sql: str) -> list[int]:
    return [value for (value,) in db.execute(sql)]


# --- determinism -------------------------------------------------------------------------------


@pytest.mark.integration
def test_the_same_seed_writes_the_same_rows_and_another_seed_other_rows(tmp_path: Path) -> None:
    first = write_databases(tmp_path / "a", people=400, seed=5, at=AT)
    again = write_databases(tmp_path / "b", people=400, seed=5, at=AT)
    other = write_databases(tmp_path / "c", people=400, seed=6, at=AT)
    for party in ("chirp", "reelix"):
        a, b, c = (contents_hash(getattr(w, party)) for w in (first, again, other))
        assert a == b
        assert a != c
    assert first.rows == again.rows


@pytest.mark.integration
def test_writing_again_replaces_the_databases(tmp_path: Path) -> None:
    write_databases(tmp_path, people=50, seed=1, at=AT)
    written = write_databases(tmp_path, people=80, seed=1, at=AT)
    with connect(written.chirp) as db:
        assert db.execute("SELECT count(*) FROM people").fetchone() == (80,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chirp.db", "reelix.db"]


@pytest.mark.integration
def test_one_person_is_a_population_and_none_is_not(tmp_path: Path) -> None:
    written = write_databases(tmp_path, people=1, seed=1, at=AT)
    with connect(written.chirp) as db:
        assert db.execute("SELECT count(*) FROM friendships").fetchone() == (0,)
    with pytest.raises(ValueError, match="at least one person"):
        write_databases(tmp_path, people=0, seed=1, at=AT)


# --- shape -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_friend_counts_are_heavy_tailed(scenario: Written) -> None:
    with connect(scenario.chirp) as db:
        degrees = column(db, "SELECT count(*) FROM friendships GROUP BY person_id")
    median = statistics.median(degrees)
    assert 15 <= median <= 50  # most people have a few dozen friends
    assert max(degrees) >= 10 * median  # and a few have hundreds
    assert statistics.mean(degrees) > median  # skewed to the right


@pytest.mark.integration
def test_friendships_are_symmetric_and_never_with_oneself(scenario: Written) -> None:
    with connect(scenario.chirp) as db:
        one_way = db.execute(
            "SELECT count(*) FROM friendships f WHERE NOT EXISTS (SELECT 1 FROM friendships g"
            " WHERE g.person_id = f.friend_id AND g.friend_id = f.person_id)"
        ).fetchone()
        selves = db.execute("SELECT count(*) FROM friendships WHERE person_id = friend_id")
        assert one_way == (0,)
        assert selves.fetchone() == (0,)


@pytest.mark.unit
def test_the_friend_graph_is_symmetric_sorted_and_seeded() -> None:
    graph = friend_graph(500, seed=3)
    for i, friends in enumerate(graph):
        assert friends == sorted(set(friends))
        assert i not in friends
        assert all(i in graph[j] for j in friends)
    assert friend_graph(500, seed=3) == graph
    assert friend_graph(500, seed=4) != graph


@pytest.mark.integration
def test_title_popularity_is_zipf_like(scenario: Written) -> None:
    with connect(scenario.reelix) as db:
        counts = column(
            db, "SELECT count(*) AS n FROM watch_events GROUP BY title_id ORDER BY n DESC"
        )
    assert 0.1 < counts[0] / sum(counts) < 0.3  # the top title takes a large share
    # Slope of log(frequency) on log(rank) over the head of the catalogue: about -1.1.
    ranks = range(1, 31)
    xs = [math.log(r) for r in ranks]
    ys = [math.log(counts[r - 1]) for r in ranks]
    slope = statistics.linear_regression(xs, ys).slope
    assert -1.4 < slope < -0.8


@pytest.mark.unit
def test_zipf_weights_fall_as_a_power_of_rank() -> None:
    cum = zipf_weights(4, exponent=1.0)
    weights = [cum[0], *(b - a for a, b in itertools.pairwise(cum))]
    assert weights == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4])


@pytest.mark.integration
def test_about_a_third_link_accounts_and_each_link_joins_the_same_human(scenario: Written) -> None:
    with connect(scenario.reelix) as db:
        links = db.execute("SELECT member_id, chirp_person_id FROM linked_accounts").fetchall()
    assert 0.3 <= len(links) / PEOPLE <= 0.4
    assert all(member[1:] == chirp[1:] for member, chirp in links)


# --- consistency -------------------------------------------------------------------------------


@pytest.mark.integration
def test_one_to_one_threads_are_between_friends_and_groups_have_three_to_eight(
    scenario: Written,
) -> None:
    with connect(scenario.chirp) as db:
        sizes = set(
            db.execute(
                "SELECT t.kind, count(*) FROM threads t JOIN thread_participants p"
                " USING (thread_id) GROUP BY t.thread_id"
            ).fetchall()
        )
        strangers = db.execute(
            "SELECT count(*) FROM threads t"
            " JOIN thread_participants a ON a.thread_id = t.thread_id"
            " JOIN thread_participants b ON b.thread_id = t.thread_id AND a.person_id < b.person_id"
            " WHERE t.kind = '1:1' AND NOT EXISTS (SELECT 1 FROM friendships f"
            " WHERE f.person_id = a.person_id AND f.friend_id = b.person_id)"
        ).fetchone()
        outsiders = db.execute(
            "SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM thread_participants"
            " p WHERE p.thread_id = m.thread_id AND p.person_id = m.sender_id)"
        ).fetchone()
        early = db.execute(
            "SELECT count(*) FROM messages m JOIN threads t USING (thread_id)"
            " WHERE m.sent_at < t.created_at"
        ).fetchone()
    assert sizes <= {("1:1", 2)} | {("group", n) for n in range(3, 9)}
    assert ("1:1", 2) in sizes
    assert strangers == (0,)
    assert outsiders == (0,)
    assert early == (0,)


@pytest.mark.integration
def test_recommendations_are_delivered_where_the_friend_can_see_them(scenario: Written) -> None:
    with connect(scenario.reelix) as db:
        linked = {c for (c,) in db.execute("SELECT chirp_person_id FROM linked_accounts")}
        senders = {m for (m,) in db.execute("SELECT member_id FROM linked_accounts")}
        recs = db.execute(
            "SELECT sender_member_id, recipient_chirp_person_id, delivered_in, sent_at,"
            " clicked_at FROM recommendations"
        ).fetchall()
    with connect(scenario.chirp) as db:
        sent_as_messages = db.execute(
            "SELECT count(*) FROM messages WHERE sent_via = 'reelix'"
        ).fetchone()[0]
        friends = set(db.execute("SELECT person_id, friend_id FROM friendships").fetchall())
    assert recs
    assert {sender for sender, *_ in recs} <= senders  # only people who linked send
    for sender, recipient, delivered, sent, clicked in recs:
        assert (person_id(CHIRP, int(sender[1:])), recipient) in friends
        assert delivered == ("reelix" if recipient in linked else "chirp_message")
        assert clicked is None or sent <= clicked <= AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sent_as_messages == sum(1 for r in recs if r[2] == "chirp_message")


@pytest.mark.integration
def test_nothing_happens_after_the_instant_or_before_the_account(scenario: Written) -> None:
    now = AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    with connect(scenario.reelix) as db:
        late = db.execute(
            "SELECT count(*) FROM watch_events w JOIN members m USING (member_id)"
            " WHERE w.watched_at < m.joined_at OR w.watched_at > ?",
            (now,),
        ).fetchone()
        assert late == (0,)
    with connect(scenario.chirp) as db:
        for table, when in (("messages", "sent_at"), ("feed_posts", "posted_at")):
            latest = db.execute(f"SELECT max({when}) FROM {table}").fetchone()[0]  # noqa: S608
            assert latest <= now


@pytest.mark.integration
def test_consents_and_opt_outs_are_about_people_in_the_databases(scenario: Written) -> None:
    population = generate(PEOPLE, seed=SEED, at=AT)
    tables = {
        CHIRP: (scenario.chirp, "people", "person_id"),
        REELIX: (scenario.reelix, "members", "member_id"),
    }
    where: dict[str, dict[str, str]] = {}
    for party, (path, table, key) in tables.items():
        with connect(path) as db:
            where[party] = dict(db.execute(f"SELECT {key}, jurisdiction FROM {table}").fetchall())  # noqa: S608
    for person in population.people:
        assert where[person.party][person.id] == person.jurisdiction
    for consent in population.consents:
        assert where[consent.controller][consent.person] == consent.jurisdiction
    opted_out_in = {where[o.controller][o.person] for o in population.opt_outs}
    # people opted out in California and elsewhere, so the demo shows the rule in every place
    assert {"US-CA", "US-TX", "DE", "CA"} <= opted_out_in
    assert homes(PEOPLE, seed=SEED) == [where[CHIRP][person_id(CHIRP, i)] for i in range(PEOPLE)]


@pytest.mark.unit
def test_every_consent_rule_has_people_to_act_on() -> None:
    population = generate(PEOPLE, seed=SEED, at=AT)
    consents = population.consents
    two_years_ago = AT.replace(year=AT.year - 2)
    assert any(not c.distinct_and_separate for c in consents)  # bundled with the terms
    assert any(c.given_at < two_years_ago for c in consents)  # older than VPPA allows
    assert any(c.withdrawn_at is not None for c in consents)
    assert any(c.scope is Scope.ONE_DISCLOSURE and c.disclosure in TITLES for c in consents)
    assert any(c.excluded_titles and c.excluded_titles <= set(TITLES) for c in consents)
    assert any(o.source is SignalSource.GPC for o in population.opt_outs)
    # A minority says yes to any one prompt.
    assert 0.1 < len(consents) / (PEOPLE * 5) < 0.5


@pytest.mark.integration
def test_a_process_per_party_writes_the_same_rows_as_one_process(tmp_path: Path) -> None:
    apart = write_databases(tmp_path / "apart", people=300, seed=9, at=AT, parallel=True)
    together = write_databases(tmp_path / "together", people=300, seed=9, at=AT, parallel=False)
    assert contents_hash(apart.chirp) == contents_hash(together.chirp)
    assert contents_hash(apart.reelix) == contents_hash(together.reelix)
    assert apart.rows == together.rows
    assert sorted(p.name for p in (tmp_path / "apart").iterdir()) == ["chirp.db", "reelix.db"]
