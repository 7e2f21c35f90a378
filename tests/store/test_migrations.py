"""The migrations build exactly the tables the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import importlib.util
import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

import accord.store.tables  # noqa: F401  (the store's tables on Base.metadata)
from accord.store.engine import Base, make_engine
from accord.store.migrate import alembic_config, current, open_store, upgrade

for _module in (
    "accord.ledger.tables",
    "accord.api.tables",
    "accord.pets.tables",
    "accord.ads.tables",
):
    if importlib.util.find_spec(_module) is not None:
        importlib.import_module(_module)

STORE_TABLES = {
    "parties",
    "people",
    "agreements",
    "agreement_reviews",
    "agreement_transitions",
    "consents",
    "consent_purposes",
    "consent_categories",
    "consent_excluded_titles",
    "consent_uses",
    "opt_outs",
}


@pytest.mark.unit
def test_the_core_revision_is_the_base() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    core = scripts.get_revision("0001_core")
    assert core is not None
    assert core.down_revision is None
    assert scripts.get_bases() == ["0001_core"]
    assert len(scripts.get_heads()) == 1


@pytest.mark.integration
def test_migrations_produce_exactly_the_metadata(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            differences = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
            tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
        assert differences == []
        assert tables == set(Base.metadata.tables)
        assert tables >= STORE_TABLES
        heads = ScriptDirectory.from_config(alembic_config()).get_heads()
        assert current(engine) == heads[0]
    finally:
        engine.dispose()


@pytest.mark.integration
def test_open_store_twice_migrates_once(db_url: str) -> None:
    for _ in range(2):
        engine, sessions = open_store(db_url)
        try:
            with sessions() as session:
                assert session.get_bind() is engine
            assert current(engine) is not None
        finally:
            engine.dispose()


@pytest.mark.integration
def test_a_fresh_database_has_no_revision(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        assert current(engine) is None
    finally:
        engine.dispose()


@pytest.mark.integration
@pytest.mark.postgres
def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    engines = [make_engine(pg_url) for _ in range(4)]
    errors: list[BaseException] = []

    def start(engine: Engine) -> None:
        try:
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001  (collected and asserted below)
            errors.append(exc)

    try:
        threads = [threading.Thread(target=start, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert current(engines[0]) == ScriptDirectory.from_config(alembic_config()).get_heads()[0]
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.integration
def test_keys_made_before_their_lookup_was_stored_get_it_on_upgrade(db_url: str) -> None:
    """0005 computes each existing key's lookup pseudonym and keeps every index row."""
    from sqlalchemy import text

    from accord.ledger import shred

    engine = make_engine(db_url)
    keys = {f"reelix/m{n}": bytes([n]) * 32 for n in range(1, 6)}
    try:
        upgrade(engine, "0004_pets")
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO person_keys (person_id, key, created_at) VALUES (:p, :k, :at)"),
                [{"p": p, "k": k, "at": "2026-11-29T12:00:00.000000Z"} for p, k in keys.items()],
            )
            # Before 0005 index rows carried the whole 32-byte HMAC.
            conn.execute(
                text("INSERT INTO ledger_person_index (pseudonym, leaf_idx) VALUES (:s, :i)"),
                [{"s": _full_lookup(k), "i": i} for i, k in enumerate(keys.values())],
            )
        upgrade(engine)
        with engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT person_id, lookup FROM person_keys")).all())
            indexed = conn.execute(text("SELECT count(*) FROM ledger_person_index")).scalar_one()
            found = {p: shred.leaves_of(conn, p) for p in keys}
        assert {p: bytes(v) for p, v in stored.items()} == {
            p: shred.lookup_pseudonym(k) for p, k in keys.items()
        }
        assert indexed == len(keys)
        assert found == {p: (k, [i]) for i, (p, k) in enumerate(keys.items())}
        assert all(len(v) == shred.LOOKUP_SIZE == 16 for v in stored.values())

        command.downgrade(alembic_config(db_url), "0004_pets")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT pseudonym FROM ledger_person_index")).scalars()
            assert {bytes(r) for r in rows} == {_full_lookup(k) for k in keys.values()}
    finally:
        engine.dispose()


def _full_lookup(key: bytes) -> bytes:
    import hmac

    return hmac.digest(key, b"accord/ledger/lookup/v1", "sha256")


@pytest.mark.integration
def test_sqlite_keeps_ledger_keys_and_index_in_their_primary_key_alone(sqlite_url: str) -> None:
    from sqlalchemy import text

    engine = make_engine(sqlite_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            schema = dict(
                conn.execute(
                    text(
                        "SELECT name, sql FROM sqlite_master WHERE name IN "
                        "('person_keys', 'ledger_person_index')"
                    )
                ).all()
            )
        assert set(schema) == {"person_keys", "ledger_person_index"}
        assert all("WITHOUT ROWID" in sql for sql in schema.values())
    finally:
        engine.dispose()


@pytest.mark.integration
def test_index_rows_move_to_part_0_and_back(db_url: str) -> None:
    """0008 keys the person index by part: existing rows become part 0 and are still found; an
    entry about many people then gets a part of its own; the downgrade keeps every row."""
    from sqlalchemy import text

    from accord.ledger import shred
    from accord.ledger.checkpoint import Signer
    from accord.ledger.entries import ReleaseEntry
    from accord.ledger.log import Ledger

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0007_filter_covering")
        keys = {f"reelix/m{n}": bytes([n]) * 32 for n in range(1, 4)}
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO person_keys (person_id, key, lookup, created_at) "
                    "VALUES (:p, :k, :l, :at)"
                ),
                [
                    {"p": p, "k": k, "l": shred.lookup_pseudonym(k), "at": "2026-11-29T12:00:00Z"}
                    for p, k in keys.items()
                ],
            )
            conn.execute(
                text("INSERT INTO ledger_person_index (pseudonym, leaf_idx) VALUES (:s, :i)"),
                [{"s": shred.lookup_pseudonym(k), "i": i} for i, k in enumerate(keys.values())],
            )
        upgrade(engine)
        with engine.connect() as conn:
            assert {p: shred.leaves_of(conn, p) for p in keys} == {
                p: (k, [i]) for i, (p, k) in enumerate(keys.items())
            }
            parts = conn.execute(text("SELECT DISTINCT part FROM ledger_person_index")).scalars()
            assert list(parts) == [0]
        crowd = [f"reelix/c{n:05d}" for n in range(shred.MANY)]
        ledger = Ledger(engine, Signer.generate("test.accord.local/ledger"))
        entry = ReleaseEntry(
            agreement="a", reason="many", about=tuple(crowd), provider="reelix", recipient="chirp"
        )
        (receipt,) = ledger.append([entry])
        assert ledger.entries_about(crowd[7]) == [receipt.index]
        with engine.connect() as conn:
            listed = conn.execute(text("SELECT part FROM ledger_index_parts")).scalars()
            assert list(listed) == [shred.own_part(receipt.index)]

        command.downgrade(alembic_config(db_url), "0007_filter_covering")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM ledger_person_index")).scalar_one()
            assert rows == len(keys) + len(crowd)
            assert "ledger_index_parts" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()
