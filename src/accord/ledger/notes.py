"""Notes on an earlier release: the entries that say a release the ledger holds never reached
its recipient, written by the gateway and read by whoever shows releases (the privacy centre,
the auditor's flow map).

The log is append-only, so a release's own entry stays as it was; what became of it is said by
a refused ``decision`` entry after it, under one of two rules, whose reason names the release's
index in words a person reads. The words are written here and read here, so the two agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

RELEASE_UNDELIVERED_RULE = "gateway:release-undelivered"
"""The rule of the entry noting a release the ledger holds but its caller never received: the
store failed while committing it, and the caller was answered that nothing was released."""
RELEASE_FAILED_RULE = "gateway:release-failed"
"""The rule of the entry noting a write whose rows the receiving party's database refused after
its release was logged."""

_UNDONE = re.compile(r"\bthe release logged at index (\d+) (?:was never received|failed in )")


def never_received(index: int, why: str) -> str:
    """What a :data:`RELEASE_UNDELIVERED_RULE` note says of the release at ``index``."""
    return f"the release logged at index {index} was never received: {why}"


def failed_in(index: int, receiver: str, message: str) -> str:
    """What a :data:`RELEASE_FAILED_RULE` note says of the write logged at ``index``."""
    return f"the release logged at index {index} failed in {receiver}'s database: {message}"


def undone_release(entry: Mapping[str, Any]) -> int | None:
    """The index of the release that a ledger entry (a leaf's JSON object) says never reached
    its recipient: a note that its caller never received it (:data:`RELEASE_UNDELIVERED_RULE`)
    or that writing it into the receiving party's database failed (:data:`RELEASE_FAILED_RULE`).
    ``None`` for any other entry."""
    rules = entry.get("rules")
    if entry.get("kind") != "decision" or not isinstance(rules, list) or len(rules) != 1:
        return None
    if rules[0] not in (RELEASE_UNDELIVERED_RULE, RELEASE_FAILED_RULE):
        return None
    found = _UNDONE.search(str(entry.get("reason", "")))
    return int(found.group(1)) if found else None


def notes_on(entries: Iterable[tuple[int, Mapping[str, Any]]]) -> dict[int, int]:
    """Among ``entries`` (each with its index), the releases a note says never reached their
    recipient: each release's index, to its (latest) note's."""
    return {
        release: index for index, entry in entries if (release := undone_release(entry)) is not None
    }
