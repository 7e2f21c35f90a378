"""The kinds of ledger entry, by name: what ``accord ledger show --kind`` offers.

Kept apart from :mod:`accord.ledger.entries` (and checked against it by a test) so a command's
help names them without loading the entry classes and their canonical JSON encoder.
"""

from __future__ import annotations

KINDS = (
    "ad_spend",
    "agreement",
    "app",
    "audience",
    "budget",
    "consent",
    "decision",
    "erasure",
    "erasure_notice",
    "model_card",
    "release",
)
