from __future__ import annotations

import re
from datetime import date
from importlib import resources

import pytest

from accord import agreements as A
from accord.errors import AgreementFormatError, LifecycleError
from builders import NOW, activate, agreement, clause

pytestmark = pytest.mark.unit

GOOD = """\
id: acme-beta
title: Acme and Beta
provider: acme
recipient: beta
valid_from: 2026-01-01
valid_until: 2027-01-01
clauses:
  - id: c1
    direction: provider_to_recipient
    categories: [user.contact.email]
    purposes: [essential.service]
    retention_days: 7
"""


def problems(text: str) -> list[str]:
    with pytest.raises(AgreementFormatError) as err:
        A.parse(text, source="acme.yaml")
    return err.value.problems


def test_examples_shipped_with_accord_parse() -> None:
    folder = resources.files("accord") / "examples"
    # The agreements; report-rule.yaml beside them is a clean-room analysis rule.
    names = sorted(p.name for p in folder.iterdir() if p.name.startswith("chirp-reelix"))
    assert names == [
        "chirp-reelix-audience.yaml",
        "chirp-reelix-cleanroom.yaml",
        "chirp-reelix-partner-ads.yaml",
        "chirp-reelix-titan.yaml",
        "chirp-reelix.yaml",
    ]
    for name in names:
        parsed = A.parse((folder / name).read_text(), source=name)
        assert parsed.clauses


def test_good_document_parses() -> None:
    a = A.parse(GOOD)
    assert a.clauses[0].categories == frozenset({"user.contact.email"})
    assert a.sender_of(a.clauses[0]) == "acme"
    assert "acme → beta" in A.describe(a)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # a misspelt category: the line, the path, and the key meant
        (
            ("user.contact.email", "user.contact.emial"),
            (
                "acme.yaml:10: clauses[0].categories[0]: unknown data category "
                "'user.contact.emial'; did you mean 'user.contact.email'"
            ),
        ),
        # a misspelt key
        (
            ("retention_days: 7", "retention_day: 7"),
            "acme.yaml:12: clauses[0].retention_day: unknown key; did you mean 'retention_days'?",
        ),
        # a purpose that does not exist
        (
            ("essential.service]", "essential.servic]"),
            "acme.yaml:11: clauses[0].purposes[0]: unknown purpose 'essential.servic'",
        ),
        # a direction that is not one
        (
            ("provider_to_recipient", "sideways"),
            (
                "acme.yaml:9: clauses[0].direction: Input should be 'provider_to_recipient' or "
                "'recipient_to_provider'"
            ),
        ),
        # a required key left out
        (("title: Acme and Beta\n", ""), "acme.yaml:1: title: required and missing"),
        # an unknown region
        (
            ("    retention_days: 7", "    retention_days: 7\n    regions: [Narnia]"),
            "acme.yaml:13: clauses[0].regions: 'Narnia' is not a jurisdiction",
        ),
    ],
)
def test_errors_point_to_line_and_field(edit: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*edit)
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_not_yaml() -> None:
    found = problems("id: [unclosed\n")
    assert found[0].startswith("acme.yaml:2: not valid YAML")


def test_document_level_rules() -> None:
    assert any(
        "valid_until must come after" in p
        for p in problems(GOOD.replace("valid_until: 2027-01-01", "valid_until: 2025-01-01"))
    )
    assert any(
        "two different parties" in p
        for p in problems(GOOD.replace("recipient: beta", "recipient: acme"))
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"granularity": "aggregate"}, "needs min_group_size"),
        ({"min_group_size": 10}, "applies only to granularity: aggregate"),
        ({"legal_basis": "consent", "consent_needed": False}, "contradicts itself"),
        ({"fields": ["nodot"]}, "must be written collection.field"),
    ],
)
def test_clause_rules(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(AgreementFormatError, match=message):
        agreement(clause(**overrides))


def test_duplicate_clause_ids() -> None:
    with pytest.raises(AgreementFormatError, match="repeated: c1"):
        agreement(clause(), clause())


# --- lifecycle ---------------------------------------------------------------------------------

REVIEW = A.Review("Dana Privacy", date(2026, 1, 2), "no findings", approved=True, version=1)


@pytest.mark.parametrize(
    ("path", "error"),
    [
        # the happy path
        ([A.Status.IN_REVIEW, A.Status.APPROVED, A.Status.ACTIVE], None),
        # straight from draft to active: not without review
        ([A.Status.ACTIVE], "can move to ended, in_review, not active"),
        # approval without a review
        ([A.Status.IN_REVIEW, (A.Status.APPROVED, None)], "needs a recorded privacy review"),
        # a review that did not approve
        (
            [
                A.Status.IN_REVIEW,
                (A.Status.APPROVED, A.Review("Dana", date(2026, 1, 2), "leaks", False, 1)),
            ],
            "did not approve",
        ),
        # a review of another version
        (
            [
                A.Status.IN_REVIEW,
                (A.Status.APPROVED, A.Review("Dana", date(2026, 1, 2), "ok", True, 2)),
            ],
            "review is of version 2",
        ),
        # suspend and resume
        (
            [
                A.Status.IN_REVIEW,
                A.Status.APPROVED,
                A.Status.ACTIVE,
                A.Status.SUSPENDED,
                A.Status.ACTIVE,
            ],
            None,
        ),
        # nothing after the end
        ([A.Status.ENDED, A.Status.DRAFT], "it has ended"),
        # changes asked for in review go back to draft
        ([A.Status.IN_REVIEW, A.Status.DRAFT, A.Status.IN_REVIEW], None),
    ],
)
def test_lifecycle(path: list[object], error: str | None) -> None:
    def walk() -> A.Registered:
        reg = A.Registered(agreement())
        for step in path:
            to, review = step if isinstance(step, tuple) else (step, REVIEW)
            reg = A.advance(reg, to, at=NOW, by="dpo", review=review)
        return reg

    if error is not None:
        with pytest.raises(LifecycleError, match=re.escape(error)):
            walk()
        return
    reg = walk()
    assert [t.to for t in reg.history] == [s[0] if isinstance(s, tuple) else s for s in path]


def test_review_needs_reviewer_and_findings() -> None:
    with pytest.raises(LifecycleError, match="names its reviewer"):
        A.Review(" ", date(2026, 1, 1), "ok", True, 1)
    with pytest.raises(LifecycleError, match="records its findings"):
        A.Review("Dana", date(2026, 1, 1), "", True, 1)


def test_in_force_and_published() -> None:
    reg = activate(agreement())
    assert reg.published
    assert reg.in_force(date(2026, 6, 1))
    assert not reg.in_force(date(2028, 1, 1))  # valid_until is exclusive
    assert not A.Registered(agreement()).published
    assert "never had a privacy review" in (
        A.Registered(agreement()).why_not_in_force(date(2026, 6, 1)) or ""
    )
