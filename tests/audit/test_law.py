"""The auditor's evaluator, row by row from the statutes and the agreement.

Each row states a situation (who, where, which consent, which release) and what the statute or
the clause says of it; the expected verdicts come from the statute text, not from the gateway.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from law_builders import ADS, AT, DAY, MEDIA, PRIVATE, consent, release

from accord.audit.law import Disclosure, Person, judge, release_problems
from accord.consent import Consent, Operation, OptOut, OptOutKind, Scope, SignalSource

pytestmark = pytest.mark.unit


def member(home: str = "CA", *consents: Consent, **kw: Any) -> Person:
    """Member m1 of reelix, living in ``home``, with ``consents``."""
    return Person("m1", "reelix", home, tuple(consents), **kw)


OPTED_OUT = OptOut("m1", "reelix", OptOutKind.SALE_SHARING, SignalSource.GPC, AT - 10 * DAY)
ADS_CONSENT = consent(purposes=frozenset({ADS}))
EMAIL = "marketing.communications.email"

ROWS: list[tuple[Disclosure, Person, str | None, bool, str]] = [
    # The clause needs consent: one in force, for this recipient, purpose and category, allows.
    (release(), member("CA", consent()), None, True, ""),
    # No consent at all: the clause's condition fails.
    (release(), member("CA"), None, False, "no consent"),
    # Withdrawn the day before the release: no longer in force.
    (release(), member("CA", consent(withdrawn_at=AT - DAY)), None, False, "withdrawn"),
    # Withdrawn only after the release: it was in force then.
    (release(), member("CA", consent(withdrawn_at=AT + DAY)), None, True, ""),
    # Given only after the release.
    (release(), member("CA", consent(given_at=AT + DAY)), None, False, "given only later"),
    # Expired before the release.
    (release(), member("CA", consent(expires_at=AT - DAY)), None, False, "expired"),
    # A consent to another recipient does not count (consent names its recipient).
    (release(), member("CA", consent(recipient="other")), None, False, "no consent"),
    # A consent to another purpose does not count: purpose limitation, GDPR Art. 5(1)(b).
    (release(), member("CA", consent(purposes=frozenset({ADS}))), None, False, "no consent"),
    # A consent to read does not allow writing.
    (
        release(
            "send",
            operation=Operation.WRITE,
            categories=frozenset({PRIVATE}),
            field_categories=frozenset({PRIVATE}),
            provider="reelix",
            recipient="chirp",
            controller="chirp",
        ),
        Person(
            "m1",
            "chirp",
            "CA",
            (consent(controller="chirp", recipient="reelix", categories=frozenset({PRIVATE})),),
        ),
        None,
        False,
        "2702(b)(3)",
    ),
    # ... while the person's own consent to sending does (SCA house rule: the sender's consent).
    (
        release(
            "send",
            operation=Operation.WRITE,
            categories=frozenset({PRIVATE}),
            field_categories=frozenset({PRIVATE}),
            controller="chirp",
        ),
        Person(
            "m1",
            "chirp",
            "CA",
            (
                consent(
                    controller="chirp",
                    recipient="reelix",
                    categories=frozenset({PRIVATE}),
                    operations=frozenset({Operation.WRITE}),
                ),
            ),
        ),
        None,
        True,
        "",
    ),
    # VPPA (b)(2)(B)(i)-(ii): a US viewer, distinct and separate consent given a year before.
    (release(), member("US-TX", consent(given_at=AT - 365 * DAY)), None, True, ""),
    # VPPA (b)(2)(B)(i): a consent bundled with other terms is not distinct and separate.
    (release(), member("US-TX", consent(distinct_and_separate=False)), None, False, "2710"),
    # VPPA (b)(2)(B)(ii)(II): advance consent lasts at most two years, whatever it states.
    (release(), member("US-NY", consent(given_at=AT - 731 * DAY)), None, False, "2 years"),
    # VPPA (b)(2)(B)(iii): a title withdrawn case by case is not disclosed...
    (release(), member("US-CA", consent(excluded_titles=frozenset({"t9"}))), "t9", False, "t9"),
    # ... while the other titles still are.
    (release(), member("US-CA", consent(excluded_titles=frozenset({"t9"}))), "t1", True, ""),
    # VPPA (a)(3): counts over groups of at least k identify no one; the clause needs no consent.
    (
        release(
            "report",
            purpose="analytics.reporting.content_performance",
            categories=frozenset({"user.behavior"}),
            field_categories=frozenset(),
            granularity="aggregate",
        ),
        member("US-TX"),
        None,
        True,
        "",
    ),
    # Outside the US and the GDPR, a bundled consent meets the clause's own condition.
    (release(), member("BR", consent(distinct_and_separate=False)), None, True, ""),
    # GDPR Art. 7(2), consent basis: a person in Germany needs a distinct and separate consent.
    (release(), member("DE", consent(distinct_and_separate=False)), None, False, "Art. 7(2)"),
    # The UK GDPR keeps the same rule.
    (release(), member("GB", consent(distinct_and_separate=False)), None, False, "Art. 7(2)"),
    # GDPR, another lawful basis (contract) and no consent needed by the clause: allowed.
    (
        release(
            "link",
            purpose="essential.service.authentication",
            categories=frozenset({"user.account.linked"}),
            field_categories=frozenset({"user.account.linked"}),
        ),
        member("DE"),
        None,
        True,
        "",
    ),
    # A one-disclosure consent covers its own title...
    (
        release(title="t1"),
        member("CA", consent(scope=Scope.ONE_DISCLOSURE, disclosure="t1")),
        None,
        True,
        "",
    ),
    # ... not another title.
    (
        release(title="t2"),
        member("CA", consent(scope=Scope.ONE_DISCLOSURE, disclosure="t1")),
        None,
        False,
        "one disclosure",
    ),
    # ... nor a read that names no title at all.
    (
        release(),
        member("CA", consent(scope=Scope.ONE_DISCLOSURE, disclosure="t1")),
        None,
        False,
        "one disclosure",
    ),
    # A sale/sharing opt-out bars advertising in California (CCPA 1798.120, 11 CCR 7025) ...
    (
        release("ads", purpose=ADS, field_categories=frozenset({MEDIA})),
        member("US-CA", replace(ADS_CONSENT), opt_outs=(OPTED_OUT,)),
        None,
        False,
        "opted out",
    ),
    # ... in Texas (its opt-out signal law) ...
    (
        release("ads", purpose=ADS),
        member("US-TX", ADS_CONSENT, opt_outs=(OPTED_OUT,)),
        None,
        False,
        "opted out",
    ),
    # ... in Germany (GDPR Art. 21(2)-(3): objection to direct marketing) ...
    (
        release("ads", purpose=ADS),
        member("DE", ADS_CONSENT, opt_outs=(OPTED_OUT,)),
        None,
        False,
        "opted out",
    ),
    # ... and in Brazil, where Accord's own rule applies: everywhere.
    (
        release("ads", purpose=ADS),
        member("BR", ADS_CONSENT, opt_outs=(OPTED_OUT,)),
        None,
        False,
        "opted out",
    ),
    # ... and from marketing messages too: GDPR Art. 21(2) covers direct marketing as a whole.
    (
        release("mail", purpose=EMAIL),
        member("DE", consent(purposes=frozenset({EMAIL})), opt_outs=(OPTED_OUT,)),
        None,
        False,
        "opted out",
    ),
    # An opt-out revoked before the release no longer bars it.
    (
        release("ads", purpose=ADS),
        member("BR", ADS_CONSENT, opt_outs=(replace(OPTED_OUT, revoked_at=AT - DAY),)),
        None,
        True,
        "",
    ),
    # An opt-out of sale and sharing says nothing of a flow that is not advertising.
    (release(), member("BR", consent(), opt_outs=(OPTED_OUT,)), None, True, ""),
    # On the party's suppression list: never released again, whatever the records say.
    (release(), member("CA", consent(), erased=True), None, False, "erased"),
    # Unknown to the store (its records erased): never released.
    (release(), member("CA", consent(), known=False), None, False, "unknown to the Accord"),
    # Unknown to the party holding them: nobody can say where they live.
    (release(), Person("m1", "reelix", None, (consent(),)), None, False, "unknown to reelix"),
    # Outside the clause's regions.
    (release("eu-feed"), member("BR", consent()), None, False, "outside the clause's regions"),
    (release("eu-feed"), member("FR", consent()), None, True, ""),
    # Friends' data: a clause needing no consent still needs a friend's own when a person asks.
    (
        release(
            "picker",
            provider="chirp",
            recipient="reelix",
            controller="chirp",
            categories=frozenset({"user.social"}),
            field_categories=frozenset(),
            relative=True,
            acting="m0",
        ),
        Person("m1", "chirp", "BR"),
        None,
        False,
        "friend's own consent",
    ),
    # ... but not the asking person's own.
    (
        release(
            "picker",
            provider="chirp",
            recipient="reelix",
            controller="chirp",
            categories=frozenset({"user.social"}),
            field_categories=frozenset(),
            relative=True,
            acting="m1",
        ),
        Person("m1", "chirp", "BR"),
        None,
        True,
        "",
    ),
    # The agreement was not active at the release: nothing flows.
    (
        release(in_force="agreement x was suspended, not active"),
        member("CA", consent()),
        None,
        False,
        "suspended",
    ),
    # A purpose outside the clause: purpose limitation.
    (release(purpose=ADS), member("CA", ADS_CONSENT), None, False, "purpose limitation"),
    # Fields beyond the clause's list.
    (
        release(fields=frozenset({"watch_events.seconds"})),
        member("CA", consent()),
        None,
        False,
        "does not list the fields",
    ),
    # Data moving the other way than the clause says.
    (
        release(provider="chirp", recipient="reelix"),
        member("CA", consent()),
        None,
        False,
        "moves data from reelix to chirp",
    ),
]


@pytest.mark.parametrize(("d", "who", "title", "allowed", "because"), ROWS)
def test_decision_table(
    d: Disclosure, who: Person, title: str | None, allowed: bool, because: str
) -> None:
    verdict = judge(d, who, title)
    assert verdict.allowed is allowed, verdict.reasons
    if because:
        assert any(because in reason for reason in verdict.reasons), verdict.reasons


def test_a_one_disclosure_consent_is_spent_once() -> None:
    single = consent(scope=Scope.ONE_DISCLOSURE, disclosure="t1")
    first = judge(release(title="t1"), member("US-TX", single))
    assert first.allowed
    assert first.spends == {"k1"}
    again = judge(release(title="t1"), member("US-TX", single), spent=first.spends)
    assert not again.allowed
    assert any("already made" in r for r in again.reasons)


def test_an_ongoing_consent_is_preferred_to_spending_a_single_one() -> None:
    single = consent(id="k2", scope=Scope.ONE_DISCLOSURE, disclosure="t1")
    verdict = judge(release(title="t1"), member("CA", consent(), single))
    assert verdict.allowed
    assert not verdict.spends


def test_a_release_under_no_agreement_is_a_problem_for_everyone() -> None:
    assert release_problems(release(agreement=None))
    assert release_problems(release(clause_id="nope"))
    assert not release_problems(release())
