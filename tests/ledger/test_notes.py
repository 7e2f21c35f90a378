"""Notes on an earlier release: what the gateway writes, read back to the index it names."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.ledger.notes import (
    RELEASE_FAILED_RULE,
    RELEASE_UNDELIVERED_RULE,
    failed_in,
    never_received,
    undone_release,
)

pytestmark = pytest.mark.unit


def _note(rule: str, what: str, **overrides: Any) -> dict[str, Any]:
    return {
        "kind": "decision",
        "allowed": False,
        "rules": [rule],
        "reason": f"Refused: {what}; nothing was released.",
        **overrides,
    }


GONE = "the release logged at index 41 was never received: x"


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        (_note(RELEASE_UNDELIVERED_RULE, GONE), 41),
        (_note(RELEASE_FAILED_RULE, "the release logged at index 7 failed in chirp's database"), 7),
        # The same words under any other rule, or beside another rule, name nothing.
        (_note("gateway:error", GONE), None),
        (
            _note(
                RELEASE_UNDELIVERED_RULE,
                GONE,
                rules=[RELEASE_UNDELIVERED_RULE, "gateway:error"],
            ),
            None,
        ),
        # A release, or a consent, that quotes them is not a note.
        (
            _note(
                RELEASE_UNDELIVERED_RULE,
                "the release logged at index 41 was never received",
                kind="release",
            ),
            None,
        ),
        # The rule without an index names nothing.
        (_note(RELEASE_UNDELIVERED_RULE, "the release was never received"), None),
        (_note(RELEASE_FAILED_RULE, "the release logged at index 7 was written"), None),
        ({"kind": "decision", "reason": "the release logged at index 3 failed in x"}, None),
    ],
)
def test_which_entries_name_a_release_that_never_arrived(
    entry: dict[str, Any], named: int | None
) -> None:
    assert undone_release(entry) == named


@given(st.integers(0, 2**53), st.text(max_size=80), st.text(min_size=1, max_size=20))
def test_what_the_gateway_writes_reads_back_to_its_index(index: int, why: str, party: str) -> None:
    # Whatever the rest of the sentence says (an error's words may quote another index).
    assert undone_release(_note(RELEASE_UNDELIVERED_RULE, never_received(index, why))) == index
    assert undone_release(_note(RELEASE_FAILED_RULE, failed_in(index, party, why))) == index
