"""No person in clear in the ledger, ever: the demo's whole ledger, its abuses included, holds no
id, e-mail address or phone number of anyone in the scenario.

The oracle is the parties' own databases: every identifier a person has there, searched for in
every leaf's bytes. Crypto-shredding forgets a person only where the log names them by a keyed
pseudonym; a sentence naming them could never be forgotten.
"""

from __future__ import annotations

import io
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select

from accord.ledger.tables import leaves_table
from accord.scenario.demo import run_demo
from accord.service import Accord

pytestmark = pytest.mark.integration

PEOPLE, SEED = 150, 7


def identifiers(parties: Path) -> set[str]:
    """Every id and e-mail address a person has in either party's database."""
    found: set[str] = set()
    queries = {
        "chirp.db": "SELECT person_id, email FROM people",
        "reelix.db": "SELECT member_id, email FROM members",
    }
    for name, query in queries.items():
        with closing(sqlite3.connect(parties / name)) as db:
            for row in db.execute(query):
                found.update(str(value) for value in row if value)
    return found


def test_no_leaf_of_the_demo_ledger_names_a_person(tmp_path: Path) -> None:
    console = Console(file=io.StringIO(), width=200)
    run_demo(console, people=PEOPLE, seed=SEED, data_dir=tmp_path / "data")
    ids = identifiers(tmp_path / "data" / "parties")
    assert len(ids) >= 2 * PEOPLE  # every person's id and e-mail address at both parties
    with (
        Accord.open(data_dir=tmp_path / "data") as accord,
        accord.engine.connect() as conn,
    ):
        leaves = [bytes(d).decode() for (d,) in conn.execute(select(leaves_table.c.data))]
    assert len(leaves) > 100
    # Whole tokens: c0000001 must not be found inside c00000010, nor an address inside another.
    pattern = re.compile(
        r"(?<![\w.@-])("
        + "|".join(map(re.escape, sorted(ids, key=len, reverse=True)))
        + r")(?![\w@-])"
    )
    named = sorted({(m.group(1), leaf[:160]) for leaf in leaves for m in pattern.finditer(leaf)})
    assert named == [], named[:10]
