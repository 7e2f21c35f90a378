"""The console's reading of the ledger (``accord.api.audit_view.ledger_entries``) keeps what it
read and reads only new leaves: after any sequence of appends and reads it returns exactly what a
fresh read of every stored leaf gives, decoded here from the rows themselves."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from accord.api.audit_view import ledger_entries
from accord.ledger.entries import DecisionEntry, ReleaseEntry
from accord.ledger.log import Ledger
from accord.ledger.tables import leaves_table

pytestmark = pytest.mark.integration


def entry(kind: str, n: int) -> DecisionEntry | ReleaseEntry:
    if kind == "decision":
        return DecisionEntry(
            agreement="a",
            purpose="functional.service",
            reason=f"r{n}",
            people=n,
            allowed=n % 2 == 0,
        )
    return ReleaseEntry(
        agreement="a",
        purpose="functional.service",
        reason=f"r{n}",
        clause="c",
        categories=("user.social",),
        about=(f"p{n}",),
        provider="chirp",
        recipient="reelix",
    )


def from_the_rows(ledger: Ledger, kinds: set[str]) -> list[tuple[int, str, str]]:
    """(index, kind, reason) of every stored leaf of ``kinds``, in order, read directly."""
    with ledger.engine.connect() as c:
        rows = c.execute(select(leaves_table.c.idx, leaves_table.c.data).order_by("idx")).all()
    out = []
    for idx, data in rows:
        leaf = json.loads(bytes(data))
        if leaf.get("kind") in kinds:
            out.append((int(idx), leaf["kind"], leaf["reason"]))
    return out


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(["decision", "release"]), max_size=6),
            st.sampled_from([("decision",), ("release",), ("decision", "release")]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_reads_after_appends_see_every_leaf_once(
    ledger: Ledger, steps: list[tuple[list[str], tuple[str, ...]]]
) -> None:
    n = 0
    for appended, kinds in steps:
        if appended:
            ledger.append([entry(kind, n + k) for k, kind in enumerate(appended)])
            n += len(appended)
        got = [(e.index, e.entry["kind"], e.entry["reason"]) for e in ledger_entries(ledger, kinds)]
        assert got == from_the_rows(ledger, set(kinds))
        # No pseudonym of a person leaves the function.
        assert all("subjects" not in e.entry for e in ledger_entries(ledger, kinds))
