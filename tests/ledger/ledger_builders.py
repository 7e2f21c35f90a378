"""Ledger entries for tests, told apart by a number."""

from __future__ import annotations

from accord.ledger.entries import DecisionEntry, ReleaseEntry


def release(number: int, *about: str) -> ReleaseEntry:
    """A release entry, told apart by ``number``, about the given people."""
    return ReleaseEntry(
        agreement="chirp-reelix-recommendations",
        clause="send-recommendation",
        purpose="personalize.content",
        categories=("user.behavior.media_consumption",),
        reason=f"release {number}: allowed by the clause and the person's consent",
        provider="reelix",
        recipient="chirp",
        fields=("title_id",),
        about=about,
    )


def decision(number: int, *, allowed: bool = True) -> DecisionEntry:
    """A decision entry, told apart by ``number``."""
    return DecisionEntry(
        agreement="chirp-reelix-recommendations",
        clause="send-recommendation",
        purpose="personalize.content",
        categories=("user.behavior.media_consumption",),
        people=1,
        reason=f"decision {number}",
        allowed=allowed,
        rules=("agreement:chirp-reelix-recommendations",),
        recipient="chirp",
    )
