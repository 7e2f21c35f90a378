from __future__ import annotations

import pytest

from accord.consent import Method
from accord.law import LegalBasis, gdpr
from builders import consent

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),  # a complete record stands
        ({"notice": ""}, "Art. 7(1)"),
        ({"distinct_and_separate": False}, "Art. 7(2)"),
        ({"withdrawal_method": None}, "Art. 7(3): record how"),
        # given in one tap, withdrawable only on paper: harder to withdraw than to give
        ({"method": Method.IN_APP_DIALOG, "withdrawal_method": Method.PAPER}, "harder"),
        # the reverse is fine
        ({"method": Method.PAPER, "withdrawal_method": Method.SETTINGS_PAGE}, None),
    ],
)
def test_consent_must_be_demonstrable(changes: dict[str, object], problem: str | None) -> None:
    problems = gdpr.consent_problems(consent(jurisdiction="FR", **changes))
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_gdpr_checks_only_people_it_protects() -> None:
    assert gdpr.consent_problems(consent(jurisdiction="US-NY", notice="")) == []


@pytest.mark.parametrize(
    ("jurisdiction", "bases", "erase", "notify"),
    [
        ("DE", (), True, {"reelix"}),  # withdrawn, nothing else: erase and tell the recipient
        ("DE", (LegalBasis.CONSENT,), True, {"reelix"}),
        ("DE", (LegalBasis.LEGAL_OBLIGATION,), False, set()),  # the law still requires keeping
        ("GB", (), True, {"reelix"}),  # UK GDPR
        ("US-NY", (), False, set()),  # not a GDPR matter
    ],
)
def test_withdrawal_obligations(
    jurisdiction: str, bases: tuple[LegalBasis, ...], erase: bool, notify: set[str]
) -> None:
    duty = gdpr.on_withdrawal(consent(jurisdiction=jurisdiction), bases)
    assert duty.erase is erase
    assert duty.notify == notify
    assert duty.reason
