"""The compiled policy follows the registry, whichever process changes it."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

import builders
from accord import agreements as ag
from accord.requests import Request
from accord.service import Accord
from accord.store.driver import pooled_one, reads_shared
from accord.store.registry import REVISION_SQL, remember_revision

pytestmark = pytest.mark.integration

EXAMPLE = (resources.files("accord") / "examples" / "chirp-reelix.yaml").read_text()
AT = datetime(2026, 11, 29, 12, tzinfo=UTC)


def _request() -> Request:
    return builders.request(
        requester="chirp", clause="watch-activity", purpose="functional.service", at=AT
    )


def test_an_agreement_suspended_elsewhere_is_refused_on_the_next_decision(
    tmp_path: Path,
) -> None:
    with Accord.open(data_dir=tmp_path) as worker, Accord.open(data_dir=tmp_path) as console:
        console.register(EXAMPLE, source="chirp-reelix.yaml", by="legal")
        console.review("chirp-reelix", reviewer="Dana", findings="none", approved=True)
        console.move("chirp-reelix", ag.Status.ACTIVE, by="dpo")
        assert worker.policy().decide(_request()).allowed

        console.move("chirp-reelix", ag.Status.SUSPENDED, by="dpo", note="audit finding")
        refused = worker.policy().decide(_request())
        assert not refused.allowed
        assert "suspended" in refused.reason

        console.move("chirp-reelix", ag.Status.ACTIVE, by="dpo", note="resolved")
        assert worker.policy().decide(_request()).allowed


def test_the_policy_is_compiled_once_per_revision_of_the_registry(tmp_path: Path) -> None:
    with Accord.open(data_dir=tmp_path) as accord:
        accord.register(EXAMPLE, source="chirp-reelix.yaml", by="legal")
        first = accord.policy()
        assert accord.policy() is first  # nothing changed: the same compiled policy
        accord.review("chirp-reelix", reviewer="Dana", findings="none", approved=True)
        assert accord.policy() is not first


def test_a_request_is_decided_against_the_registry_as_its_token_check_read_it(
    tmp_path: Path,
) -> None:
    """One read of the registry's revision per partner API request: the token check keeps it for
    the request's decision, and only for that request's block of reads."""
    with Accord.open(data_dir=tmp_path) as worker, Accord.open(data_dir=tmp_path) as console:
        console.register(EXAMPLE, source="chirp-reelix.yaml", by="legal")
        console.review("chirp-reelix", reviewer="Dana", findings="none", approved=True)
        console.move("chirp-reelix", ag.Status.ACTIVE, by="dpo")
        engine = worker.engine
        assert worker.policy().decide(_request()).allowed  # compiled at this revision
        with reads_shared(engine):
            remember_revision(engine, int(fetch_one_revision(worker)))  # the token check
            console.move("chirp-reelix", ag.Status.SUSPENDED, by="dpo", note="audit finding")
            # Suspended after the request's token was checked: decided as the registry stood.
            assert worker.policy().decide(_request()).allowed
        # The next request reads the registry again.
        assert not worker.policy().decide(_request()).allowed
        with reads_shared(engine):
            assert not worker.policy().decide(_request()).allowed
        # Outside a request's block nothing is kept.
        remember_revision(engine, 0)
        assert not worker.policy().decide(_request()).allowed


def fetch_one_revision(accord: Accord) -> int:
    row = pooled_one(accord.engine, REVISION_SQL)
    assert row is not None
    return int(row[0])
