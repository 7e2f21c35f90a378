"""The keys of the people of entries about many, kept by a ledger's writer between appends: never
used once their person was erased, by this writer or another (another process on the store)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_builders import decision, release
from sqlalchemy import Connection, Engine, text

from accord.errors import LedgerError
from accord.ledger import shred
from accord.ledger.checkpoint import Signer
from accord.ledger.entries import ErasureEntry
from accord.ledger.log import Ledger
from accord.ledger.tables import create_ledger_tables
from accord.store.engine import make_engine
from accord.store.migrate import upgrade
from databases import fresh_postgres_database

pytestmark = pytest.mark.integration

CROWD = [f"p{i:05d}" for i in range(shred.MANY)]


def lookup_rows(engine: Engine, lookup: bytes) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM ledger_person_index WHERE pseudonym = :p"), {"p": lookup}
            ).scalar_one()
        )


def keys_held(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM person_keys")).scalar_one())


def key_of(engine: Engine, person: str) -> shred.PersonKey | None:
    with engine.connect() as conn:
        return shred.keys_for(conn, [person], create=False).get(person)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, engine: Engine) -> Iterator[Engine]:
    """The ledger's tables on SQLite, or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield engine
        return
    with fresh_postgres_database() as url:
        built = make_engine(url)
        upgrade(built)
        yield built
        built.dispose()


def test_a_person_erased_by_another_writer_is_never_written_under_their_old_key(
    store: Engine, signer: Signer
) -> None:
    """Two ledgers on one store, as two processes: one keeps the crowd's keys, the other erases
    one of them; the first's next entry about the crowd gives that person a new key (nothing
    refuses it here), and nothing is written under the erased key."""
    engine = store
    kept, other = Ledger(engine, signer), Ledger(engine, signer)
    other.append([release(0, *CROWD)])  # the keys made
    kept.append([release(0, *CROWD)])  # read, and kept
    old = key_of(engine, CROWD[0])
    assert old is not None
    assert lookup_rows(engine, old[1]) == 2
    other.append([decision(1)])  # leaves of others in between
    other.erase(CROWD[0], "asked to be forgotten")
    other.append([decision(2)])

    (receipt,) = kept.append([release(3, *CROWD)])
    new = key_of(engine, CROWD[0])
    assert new is not None
    assert new != old
    assert lookup_rows(engine, old[1]) == 0
    assert kept.entries_about(CROWD[0]) == [receipt.index]
    assert kept.entries_about(CROWD[1]) == [0, 1, receipt.index]
    report = kept.verify()
    assert report.ok, report.problems


def test_an_entry_naming_someone_erased_since_is_refused_though_their_key_was_kept(
    engine: Engine, signer: Signer
) -> None:
    """With the store's suppression list (as Accord opens its ledger), the erased person never
    gets a key again: the entry naming them is refused, even by the writer that kept their key."""
    erased: set[str] = set()

    def suppressed(_: Connection, people: list[str]) -> Collection[str]:
        return [person for person in people if person in erased]

    kept = Ledger(engine, signer, suppressed=suppressed)
    other = Ledger(engine, signer, suppressed=suppressed)
    other.append([release(0, *CROWD)])
    kept.append([release(0, *CROWD)])
    other.erase(CROWD[7], "asked to be forgotten")
    erased.add(CROWD[7])
    with pytest.raises(LedgerError, match="erased"):
        kept.append([release(1, *CROWD)])
    assert key_of(engine, CROWD[7]) is None
    (receipt,) = kept.append([release(1, *CROWD[8:])])
    assert kept.entries_about(CROWD[8]) == [0, 1, receipt.index]


def test_an_erasure_by_the_same_writer_is_seen_too(ledger: Ledger) -> None:
    ledger.append([release(0, *CROWD)])
    ledger.append([release(1, *CROWD)])
    old = key_of(ledger.engine, CROWD[3])
    assert old is not None
    ledger.erase(CROWD[3], "asked to be forgotten")
    ledger.append([release(3, *CROWD)])
    assert lookup_rows(ledger.engine, old[1]) == 0
    assert ledger.entries_about(CROWD[3]) == [3]


def test_a_person_named_alone_erased_by_another_writer_is_never_written_under_their_old_key(
    store: Engine, signer: Signer
) -> None:
    """Keys of people named one at a time (an exchange's release) are kept too: once another
    writer erases the person, the first's next entry about them is under a new key, right after
    an append of its own (the kept keys carried past it) as after others' leaves."""
    engine = store
    kept, other = Ledger(engine, signer), Ledger(engine, signer)
    other.append([release(0, "alice"), release(1, "bob")])  # the keys made
    kept.append([decision(2), release(3, "alice")])  # read, and kept
    kept.append([decision(4), release(5, "alice")])  # the kept key used
    old = key_of(engine, "alice")
    assert old is not None
    assert lookup_rows(engine, old[1]) == 3
    other.erase("alice", "asked to be forgotten")  # straight after the keeper's own append

    (_, receipt) = kept.append([decision(7), release(8, "alice")])
    new = key_of(engine, "alice")
    assert new is not None
    assert new != old
    assert lookup_rows(engine, old[1]) == 0
    assert kept.entries_about("alice") == [receipt.index]
    other.append([decision(9)])
    other.erase("bob", "asked to be forgotten")
    other.append([decision(11)])  # others' leaves after the erasure
    (receipt,) = kept.append([release(12, "bob")])
    assert kept.entries_about("bob") == [receipt.index]
    report = kept.verify()
    assert report.ok, report.problems


def test_an_entry_about_one_person_erased_since_is_refused_though_their_key_was_kept(
    engine: Engine, signer: Signer
) -> None:
    erased: set[str] = set()

    def suppressed(_: Connection, people: list[str]) -> Collection[str]:
        return [person for person in people if person in erased]

    kept = Ledger(engine, signer, suppressed=suppressed)
    other = Ledger(engine, signer, suppressed=suppressed)
    other.append([release(0, "alice")])
    kept.append([release(1, "alice")])
    kept.append([release(2, "alice")])
    other.erase("alice", "asked to be forgotten")
    erased.add("alice")
    with pytest.raises(LedgerError, match="erased"):
        kept.append([release(4, "alice")])
    assert key_of(engine, "alice") is None


def test_an_erasure_of_one_person_by_the_same_writer_is_seen_too(ledger: Ledger) -> None:
    ledger.append([release(0, "alice")])
    ledger.append([release(1, "alice")])
    ledger.append([release(2, "alice")])
    old = key_of(ledger.engine, "alice")
    assert old is not None
    ledger.erase("alice", "asked to be forgotten")
    ledger.append([release(4, "alice")])
    assert lookup_rows(ledger.engine, old[1]) == 0
    assert ledger.entries_about("alice") == [4]


def test_kept_keys_are_read_again_past_the_leaves_they_look_through(engine: Engine) -> None:
    """Past ``scan`` leaves since, or at a smaller tree, the keys are read again rather than
    checked (here a key deleted behind their back, with no erasure leaf, shows which)."""

    def kept_at_10() -> tuple[shred.KeptKeys, shred.PersonKey]:
        kept = shred.KeptKeys(scan=3)
        with engine.begin() as conn:
            shred.keys_for(conn, ["alice"], create=True)
            old = kept.keys_for(conn, 10, {"alice"})["alice"]
        assert len(kept) == 1
        with engine.begin() as conn:
            shred.forget(conn, "alice")
        return kept, old

    kept, old = kept_at_10()
    with engine.begin() as conn:
        assert kept.keys_for(conn, 13, {"alice"})["alice"] == old  # three leaves looked through
    for later in (14, 9):
        kept, old = kept_at_10()
        with engine.begin() as conn:
            assert kept.keys_for(conn, later, {"alice"})["alice"] != old


def test_the_keys_an_append_makes_are_not_kept(engine: Engine) -> None:
    kept = shred.KeptKeys()
    with engine.begin() as conn:
        shred.keys_for(conn, ["alice"], create=True)
        keys = kept.keys_for(conn, 0, {"alice", "bob"})
    assert set(keys) == {"alice", "bob"}
    assert len(kept) == 1  # bob's key was made by the call, whose transaction may not commit


def test_kept_keys_stop_at_their_limit(engine: Engine) -> None:
    crowd = {f"c{i}" for i in range(10)}
    kept = shred.KeptKeys(limit=15)
    with engine.begin() as conn:
        shred.keys_for(conn, crowd | {"d0", "d1", "d2", "d3", "d4", "d5"}, create=True)
        assert set(kept.keys_for(conn, 0, crowd)) == crowd
        assert len(kept) == 10
        fewer = {f"d{i}" for i in range(6)}
        assert set(kept.keys_for(conn, 0, fewer)) == fewer  # 16 would be too many: anew
        assert len(kept) == 6


def test_the_erasure_mark_is_in_erasure_leaves_and_not_in_text_quoting_it() -> None:
    erasure = ErasureEntry(agreement=None, reason="asked", people=1, entries_forgotten=3)
    assert shred.ERASURE_MARK in erasure.encode()
    quoting = replace(release(2, "bob"), reason='a reason quoting "kind":"erasure"')
    assert shred.ERASURE_MARK not in quoting.encode(["00" * 32])
    assert shred.ERASURE_MARK not in decision(1).encode()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(st.sampled_from(["append", "erase"]), st.integers(0, 1), st.integers(0, 4)),
        min_size=1,
        max_size=6,
    )
)
def test_no_index_row_outlives_its_key_whoever_writes_and_erases(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, int]]
) -> None:
    """Two writers on one store append entries about a crowd and erase people of it, in any
    order: each entry is found under the keys its people hold then, every index row is under a
    key the store still holds, and the log verifies."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('kept') / 'ledger.db'}")
    try:
        create_ledger_tables(engine)
        signer = Signer.generate("test.accord.local/ledger")
        writers = [Ledger(engine, signer), Ledger(engine, signer)]
        # The keys made, then read and kept by both.
        writers[0].append([release(0, *CROWD)])
        writers[0].append([release(1, *CROWD)])
        writers[1].append([release(2, *CROWD)])
        for n, (step, writer, person) in enumerate(steps, start=3):
            if step == "append":
                (receipt,) = writers[writer].append([release(n, *CROWD)])
                # Everyone named has a key again (nothing refuses the erased here), under which
                # the entry is found.
                assert keys_held(engine) == len(CROWD)
                for someone in CROWD[:5]:
                    assert writers[1 - writer].entries_about(someone)[-1] == receipt.index
            else:
                writers[writer].erase(CROWD[person], "asked to be forgotten")
                assert writers[writer].entries_about(CROWD[person]) == []
        with engine.connect() as conn:
            orphans = conn.execute(
                text(
                    "SELECT count(*) FROM ledger_person_index AS i WHERE NOT EXISTS "
                    "(SELECT 1 FROM person_keys AS k WHERE k.lookup = i.pseudonym)"
                )
            ).scalar_one()
        assert orphans == 0
        report = writers[0].verify()
        assert report.ok, report.problems
    finally:
        engine.dispose()
