"""`accord audit` finds each kind of wrong release planted in a ledger, and nothing in a clean one.

The world is small and written by hand: Reelix's own database (members, watch events), an Accord
store holding the published Chirp–Reelix agreement and the members' consents, and release entries
appended to its ledger as a faulty gateway would have written them. What each planted release
should be reported for is what the member would say: "I never agreed", "I withdrew", "I opted
out", "I excluded that title", "I was erased", "I agreed and was left out".
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from accord import agreements as ag
from accord.cli import app
from accord.consent import Consent, OptOut, OptOutKind, Person, Scope, SignalSource
from accord.ledger import entries, subjects
from accord.ledger.entries import ReleaseEntry
from accord.ledger.rows import rows_sum
from accord.service import Accord

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MEDIA = "user.behavior.media_consumption"
FEED = "functional.service"
ADS = "marketing.advertising.third_party.targeted"

# Member: (home, watch events as (title, watched at)).
MEMBERS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "r1": ("CA", [("t1", "2026-11-01T10:00:00"), ("t2", "2026-11-02T10:00:00")]),
    "r2": ("CA", [("t1", "2026-11-03T10:00:00")]),  # never consented
    "r3": ("CA", [("t2", "2026-11-04T10:00:00")]),  # withdrew before the release
    "r4": ("US-TX", [("t3", "2026-11-05T10:00:00")]),  # consent bundled: no VPPA consent
    "r5": ("DE", [("t4", "2026-11-06T10:00:00")]),  # consented to ads, then opted out (GPC)
    "r6": ("CA", [("t5", "2026-11-07T10:00:00")]),  # erased
    "r7": ("CA", [("t1", "2026-11-08T10:00:00"), ("t9", "2026-11-09T10:00:00")]),  # excluded t9
    "r8": ("CA", [("t6", "2026-11-10T10:00:00")]),  # consented: must not be left out
    "r9": ("US-NY", [("t1", "2026-11-11T10:00:00")]),  # consented to one disclosure of t1
}


def _consent(person: str, n: int = 0, **kw: Any) -> Consent:
    base: dict[str, Any] = {
        "id": f"{person}-{n}",
        "person": person,
        "controller": "reelix",
        "recipient": "chirp",
        "purposes": frozenset({FEED}),
        "categories": frozenset({MEDIA}),
        "jurisdiction": MEMBERS[person][0],
        "given_at": AT - 200 * DAY,
        "notice": "reelix-notice",
        "distinct_and_separate": True,
    }
    base.update(kw)
    return Consent(**base)


CONSENTS = [
    _consent("r1"),
    _consent("r3", withdrawn_at=AT - 5 * DAY),
    _consent("r4", distinct_and_separate=False),
    _consent("r5", 1, purposes=frozenset({ADS})),
    _consent("r6"),
    _consent("r7", excluded_titles=frozenset({"t9"})),
    _consent("r8"),
    _consent("r9", scope=Scope.ONE_DISCLOSURE, disclosure="t1"),
]
OPT_OUTS = [OptOut("r5", "reelix", OptOutKind.SALE_SHARING, SignalSource.GPC, AT - 20 * DAY)]


@dataclass
class World:
    store: Path
    reelix: Path

    def rows(self, *people: str, leave_out: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        """The (title, watched at) rows of ``people``, as Reelix's database holds them."""
        return [row for p in people for row in MEMBERS[p][1] if row[0] not in leave_out]

    def plant(self, **kw: Any) -> int:
        """Append a release entry as a faulty gateway would have; its leaf index."""
        rows = kw.pop("rows")
        about = tuple(f"reelix/{p}" for p in kw.pop("about"))
        entry = ReleaseEntry(
            agreement="chirp-reelix",
            clause=kw.pop("clause", "watch-activity"),
            purpose=kw.pop("purpose", FEED),
            categories=(MEDIA,),
            reason="planted",
            about=about,
            provider="reelix",
            recipient="chirp",
            fields=kw.pop("fields", ("watch_events.title_id", "watch_events.watched_at")),
            operation="read",
            scope=kw.pop("scope", "people"),
            rows=len(rows),
            rows_sum=rows_sum(rows),
            at=AT,
            **kw,
        )
        with Accord.open(data_dir=self.store) as accord:
            (receipt,) = accord.ledger.append([entry])
        return receipt.index

    def audit(self, *extra: str) -> tuple[int, Any]:
        result = CliRunner().invoke(
            app,
            [
                "audit",
                "--data-dir",
                str(self.store),
                "--source",
                f"reelix=sqlite:///{self.reelix}",
                "--json",
                *extra,
            ],
        )
        assert "Traceback" not in result.output
        return result.exit_code, json.loads(result.output) if result.output.startswith("{") else (
            result.output
        )


def _reelix_database(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.executescript(
            "CREATE TABLE members (member_id TEXT PRIMARY KEY, display_name TEXT, email TEXT, "
            "jurisdiction TEXT, joined_at TEXT);"
            "CREATE TABLE watch_events (event_id INTEGER PRIMARY KEY, member_id TEXT, "
            "title_id TEXT, watched_at TEXT, seconds INTEGER);"
        )
        db.executemany(
            "INSERT INTO members VALUES (?, ?, ?, ?, '2025-01-01')",
            [(p, p, f"{p}@example.org", home) for p, (home, _) in MEMBERS.items()],
        )
        db.executemany(
            "INSERT INTO watch_events (member_id, title_id, watched_at, seconds) "
            "VALUES (?, ?, ?, 60)",
            [(p, title, at) for p, (_, events) in MEMBERS.items() for title, at in events],
        )
        db.commit()


@pytest.fixture
def world(tmp_path: Path) -> World:
    reelix = tmp_path / "reelix.db"
    _reelix_database(reelix)
    store = tmp_path / "accord"
    with Accord.open(data_dir=store) as accord:
        for party in ("chirp", "reelix"):
            accord.add_party(party, party)
        document = (resources.files("accord") / "examples" / "chirp-reelix.yaml").read_text()
        accord.register(document, source="chirp-reelix.yaml", by="test")
        accord.review("chirp-reelix", reviewer="board", findings="ok", approved=True, on=AT.date())
        accord.move("chirp-reelix", ag.Status.ACTIVE, by="board")
        people = [Person(p, "reelix", home) for p, (home, _) in MEMBERS.items()]
        accord.import_records(people, CONSENTS, OPT_OUTS)
    return World(store, reelix)


def _erase(world: World, person: str) -> None:
    """Erase a member as the erasure flow does: their store records go, then their ledger key."""
    with Accord.open(data_dir=world.store) as accord:
        with accord.engine.begin() as conn:
            ids = [
                r
                for (r,) in conn.execute(
                    text("SELECT id FROM consents WHERE person = :p"), {"p": person}
                )
            ]
            for table in ("consent_purposes", "consent_categories", "consent_excluded_titles"):
                for consent_id in ids:
                    conn.execute(
                        text(f"DELETE FROM {table} WHERE consent_id = :c"),  # noqa: S608
                        {"c": consent_id},
                    )
            conn.execute(text("DELETE FROM consents WHERE person = :p"), {"p": person})
            conn.execute(text("DELETE FROM people WHERE person_id = :p"), {"p": person})
        accord.ledger.erase(f"reelix/{person}", reason="the member asked to be erased")


def _clean(world: World) -> None:
    """Releases a correct gateway would have made."""
    world.plant(about=["r1"], rows=world.rows("r1"))
    # Everyone allowed, every row of theirs but the titles they excluded.
    world.plant(
        scope="all",
        about=["r1", "r6", "r7", "r8"],
        rows=world.rows("r1", "r6", "r8") + world.rows("r7", leave_out=("t9",)),
    )


def test_a_clean_ledger_has_no_difference(world: World) -> None:
    _clean(world)
    index = world.plant(about=["r8"], rows=world.rows("r8"))
    with Accord.open(data_dir=world.store) as accord:
        leaf = accord.ledger.leaf(index).entry()
    # The leaf holds the rows' commitment sealed, never their plain sum.
    assert "rows_sum" not in leaf
    assert leaf["rows"] == 1
    assert leaf["rows_digest"] != f"{rows_sum(world.rows('r8')):064x}"
    code, report = world.audit()
    assert code == 0, json.dumps(report["differences"])
    assert report["releases"] == 3
    assert report["differences"] == []
    assert report["rows_compared"] == 3


def _found(report: dict[str, Any], leaf: int) -> list[dict[str, Any]]:
    return [d for d in report["differences"] if d["leaf"] == leaf]


def test_each_planted_wrong_release_is_reported(world: World) -> None:
    _clean(world)
    no_consent = world.plant(about=["r2"], rows=world.rows("r2"))
    withdrawn = world.plant(about=["r3"], rows=world.rows("r3"))
    no_vppa = world.plant(about=["r4"], rows=world.rows("r4"))
    opted_out = world.plant(
        clause="interest-segments",
        purpose=ADS,
        fields=("watch_events.title_id",),
        about=["r5"],
        rows=[(title,) for title, _ in world.rows("r5")],
    )
    _erase(world, "r6")
    erased = world.plant(about=["r6"], rows=world.rows("r6"))
    excluded = world.plant(scope="all", about=["r1", "r7", "r8"], rows=world.rows("r1", "r7", "r8"))
    withheld = world.plant(
        scope="all", about=["r1", "r7"], rows=world.rows("r1") + world.rows("r7", leave_out=("t9",))
    )
    code, report = world.audit()
    assert code == 1, report

    def one(leaf: int, kind: str, person: str, because: str) -> None:
        found = [d for d in _found(report, leaf) if d["kind"] == kind and d["person"] == person]
        assert found, (leaf, _found(report, leaf))
        assert any(because in reason for reason in found[0]["reasons"]), found[0]["reasons"]

    one(no_consent, "released", "reelix/r2", "no consent")
    one(withdrawn, "released", "reelix/r3", "withdrawn")
    one(no_vppa, "released", "reelix/r4", "2710(b)(2)(B)")
    one(opted_out, "released", "reelix/r5", "opted out")
    one(erased, "released", "reelix/r6", "unknown to the Accord store")
    one(erased, "released", "reelix/r6", "erasure")
    one(excluded, "released", "reelix/r7", "rows crossed that were not allowed")
    one(excluded, "released", "reelix/r7", "excludes title t9")
    one(withheld, "withheld", "reelix/r8", "none crossed")
    # Nobody else is blamed: r1, and r7 and r8 where they were released rightly.
    blamed = {d["person"] for d in report["differences"] if d["person"]}
    assert blamed == {f"reelix/r{n}" for n in (2, 3, 4, 5, 6, 7, 8)}
    assert not [d for d in report["differences"] if d["leaf"] < no_consent]


def test_the_period_limits_what_is_reported(world: World) -> None:
    world.plant(about=["r2"], rows=world.rows("r2"))
    code, report = world.audit("--until", AT.isoformat())
    assert code == 0, json.dumps(report["differences"])
    assert report["releases"] == 0
    code, report = world.audit("--since", AT.isoformat())
    assert code == 1
    assert report["releases"] == 1


def test_the_table_for_people_names_each_difference(world: World) -> None:
    world.plant(about=["r2"], rows=world.rows("r2"))
    result = CliRunner().invoke(
        app,
        ["audit", "--data-dir", str(world.store), "--source", f"reelix=sqlite:///{world.reelix}"],
    )
    assert result.exit_code == 1
    assert "reelix/r2" in result.output
    assert "differences found" in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        # Not an instant.
        (["--since", "last tuesday"], "is not a date or time"),
        # A source without its party.
        (["--source", "sqlite:///x.db"], "PARTY=VALUE"),
        # A party with no dataset declaration to read its database by.
        (["--source", "acme=sqlite:///x.db"], "no dataset declaration for acme"),
        # A period that ends before it starts.
        (["--since", "2026-12-01", "--until", "2026-11-01"], "is not after"),
        # A scenario folder that is not there.
        (["--scenario", "/nonexistent/folder"], "is not a folder"),
    ],
)
def test_bad_input_is_exit_2_with_a_message(world: World, args: list[str], says: str) -> None:
    result = CliRunner().invoke(app, ["audit", "--data-dir", str(world.store), *args])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "Traceback" not in result.output


def test_a_release_still_tied_to_an_erased_person_is_reported(world: World) -> None:
    """A person on the party's suppression list whose key was never shredded: every release the
    ledger still ties to them is reported (an erasure must forget)."""
    index = world.plant(about=["r8"], rows=world.rows("r8"))
    with Accord.open(data_dir=world.store) as accord, accord.engine.begin() as conn:
        conn.execute(text("INSERT INTO erased_people (party, person_id) VALUES ('reelix', 'r8')"))
    code, report = world.audit()
    assert code == 1
    found = [d for d in report["differences"] if d["leaf"] == index]
    assert [d["person"] for d in found] == ["reelix/r8"]
    assert any("erased by reelix" in r for r in found[0]["reasons"])


def test_a_one_disclosure_consent_used_again_is_reported(world: World) -> None:
    """VPPA 2710(b)(2)(B)(ii)(I): consent given for one disclosure covers that one; a second
    release of the same title on its strength is a release the member never agreed to."""
    first = world.plant(about=["r9"], title="t1", rows=world.rows("r9"))
    again = world.plant(about=["r9"], title="t1", rows=world.rows("r9"))
    code, report = world.audit()
    assert code == 1
    assert _found(report, first) == []
    (found,) = _found(report, again)
    assert found["person"] == "reelix/r9"
    assert any("already made" in r for r in found["reasons"])


@pytest.mark.parametrize(
    ("back_in", "flagged"),
    [
        # opted back in the day before the release: nothing wrong
        (AT - DAY, False),
        # opted back in only the day after: still opted out when the release was made
        (AT + DAY, True),
    ],
)
def test_a_member_who_opted_back_in_may_be_in_an_ads_release(
    world: World, back_in: datetime, flagged: bool
) -> None:
    """r5 opted out (GPC), then withdrew the opt-out (`accord consent opt-in`): the auditor reads
    the ended opt-out from the store and judges the release by the opt-out in force at it."""
    with Accord.open(data_dir=world.store) as accord:
        (ended,) = accord.opt_in("reelix", "r5", back_in)
    assert ended.revoked_at == back_in
    ads = world.plant(
        clause="interest-segments",
        purpose=ADS,
        fields=("watch_events.title_id",),
        about=["r5"],
        rows=[(title,) for title, _ in world.rows("r5")],
    )
    code, report = world.audit()
    assert code == (1 if flagged else 0), json.dumps(report["differences"])
    reasons = [r for d in _found(report, ads) if d["person"] == "reelix/r5" for r in d["reasons"]]
    assert any("opted out" in r for r in reasons) is flagged


def _plant_by_root(world: World) -> int:
    """The clean release about everyone, written as a leaf about many people is: committing to
    its subjects by a root, with the list stored beside it (here from four subjects up)."""
    with patch.object(entries, "TREE_MIN", 2), patch.object(subjects, "TREE_MIN", 2):
        index = world.plant(
            scope="all",
            about=["r1", "r6", "r7", "r8"],
            rows=world.rows("r1", "r6", "r8") + world.rows("r7", leave_out=("t9",)),
        )
    with Accord.open(data_dir=world.store) as accord:
        assert "subjects_root" in accord.ledger.leaf(index).entry()
    return index


def test_a_release_committing_to_its_subjects_by_a_root_is_replayed(world: World) -> None:
    _plant_by_root(world)
    code, report = world.audit()
    # Whom it was about is read from the stored list: without them, the rows' commitment,
    # sealed with their keys, could not be matched.
    assert code == 0, json.dumps(report["differences"])
    assert report["releases"] == 1
    assert report["unexplained"] == 0


def test_a_stored_subject_list_that_is_not_the_leafs_is_reported(world: World) -> None:
    """Someone drops a person from the list stored beside a release (rewriting the chunk's row to
    match): the list no longer hashes to the root the leaf commits to, and the auditor says so."""
    index = _plant_by_root(world)
    with closing(sqlite3.connect(world.store / "accord.db")) as db:
        (tags,) = db.execute(
            "SELECT tags FROM ledger_subjects WHERE leaf_idx = ?", (index,)
        ).fetchone()
        kept = tags[32:]
        db.execute(
            "UPDATE ledger_subjects SET tags = ?, first = ?, root = ? WHERE leaf_idx = ?",
            (kept, kept[:32], subjects.chunk_root(kept), index),
        )
        db.commit()
    code, report = world.audit()
    assert code == 1
    (found,) = [d for d in _found(report, index) if d["kind"] == "release"]
    assert found["person"] is None
    assert found["reasons"] == [
        "its subjects do not verify: 3 subject tags are stored, the leaf commits to 4"
    ]
