"""Consents imported already withdrawn show both their giving and their withdrawal in the ledger.

A person's proof bundle is what they can show of their own history: a withdrawal they made before
the records were migrated into Accord must be in it, at the time they made it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from accord.consent import Person
from accord.ledger.audit import verify_ledger
from accord.service import Accord
from builders import NOW, consent

pytestmark = pytest.mark.integration


def test_an_imported_withdrawal_is_in_the_persons_proof_bundle(tmp_path: Path) -> None:
    given, withdrawn = NOW - timedelta(days=40), NOW - timedelta(days=10)
    with Accord.open(data_dir=tmp_path) as accord:
        accord.add_party("chirp")
        accord.add_party("reelix")
        accord.import_records(
            [Person("p1", "chirp", "DE"), Person("p2", "chirp", "US-NY")],
            [
                consent("p1", jurisdiction="DE", given_at=given, withdrawn_at=withdrawn),
                consent("p2", jurisdiction="US-NY", given_at=given),  # still in force
            ],
        )
        bundle = accord.ledger.prove_person("chirp/p1", sign=True)
        leaves = [json.loads(e["leaf"]) for e in bundle["entries"]]
        history = sorted((leaf["at"], leaf["change"]) for leaf in leaves)
        assert history == [
            (given.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "given"),
            (withdrawn.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "withdrawn"),
        ]
        # p1 lives in Germany: the withdrawal entry says what the GDPR then requires
        (gone,) = [leaf for leaf in leaves if leaf["change"] == "withdrawn"]
        assert "Art. 17(1)(b)" in gone["reason"]
        # a consent still in force has only its giving
        other = accord.ledger.prove_person("chirp/p2", sign=True)
        changes = [json.loads(e["leaf"])["change"] for e in other["entries"]]
        assert changes == ["given"]
        assert verify_ledger(accord.ledger).ok
