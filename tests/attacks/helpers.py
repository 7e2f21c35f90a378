"""What the adversarial tests share: a refusal as the API answers it, and what the ledger holds
of an attempt (refused, logged, and nothing released)."""

from __future__ import annotations

from typing import Any

import httpx

from api.world import World

SOCIAL = "user.social:functional.service"
PRIVATE = "user.content.private:functional.service"
WATCHED = "user.behavior.media_consumption:functional.service"
EXCHANGES = "/v1/agreements/{agreement}/clauses/{clause}/exchanges"


def exchanges(clause: str, agreement: str = "chirp-reelix") -> str:
    """The exchanges path of one clause."""
    return EXCHANGES.format(agreement=agreement, clause=clause)


def inbox(subjects: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A message-sync read of messages about ``subjects``."""
    return {
        "collection": "messages",
        "purpose": "functional.service",
        "categories": ["user.content.private"],
        "subjects": subjects,
        **extra,
    }


def watch(**extra: Any) -> dict[str, Any]:
    """A watch-activity read of Reelix's watch events."""
    return {
        "collection": "watch_events",
        "purpose": "functional.service",
        "categories": ["user.behavior.media_consumption"],
        **extra,
    }


def friends_of(anchor: str, **extra: Any) -> dict[str, Any]:
    """A friend-picker read of ``anchor``'s friends, pinned to them."""
    return {
        "collection": "friendships",
        "purpose": "functional.service",
        "categories": ["user.social"],
        "subjects": {"kind": "friends_of", "anchor": anchor},
        "where": {"person_id": anchor},
        **extra,
    }


def refused(r: httpx.Response, status: int, rule: str | None = None) -> dict[str, Any]:
    """The problem document (RFC 9457) of a refusal with ``status``, naming ``rule`` if given."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert "Traceback" not in r.text
    assert "rows" not in body
    if rule is not None:
        assert body["rules"] == [rule]
    return body


def logged_refusal(world: World, receipt: int, rule: str) -> None:
    """The entry at ``receipt`` refuses by ``rule`` and released about no one."""
    entry = world.accord.ledger.leaf(receipt).entry()
    assert entry["allowed"] is False
    assert entry["rules"] == [rule]
    assert entry["people"] == 0


def entries_since(world: World, size: int) -> list[dict[str, Any]]:
    """Every ledger entry appended since the tree had ``size`` leaves, oldest first."""
    head = world.accord.ledger.head().size
    return [world.accord.ledger.leaf(i).entry() for i in range(size, head)]


def refused_and_logged(world: World, size: int) -> list[dict[str, Any]]:
    """What was appended since ``size``: at least one refusal, and no release at all."""
    written = entries_since(world, size)
    assert written, "the attempt left no entry in the ledger"
    assert [e for e in written if e["kind"] == "release"] == []
    decisions = [e for e in written if e["kind"] == "decision"]
    assert decisions
    assert all(e["allowed"] is False and e["people"] == 0 for e in decisions)
    return written
