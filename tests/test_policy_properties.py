"""Properties of decisions over random agreements, consents, jurisdictions and requests.

The oracle below restates the rules from the statutes and the agreement format without using
Accord's filter or policy code, so a bug there cannot hide in both.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accord import agreements as A
from accord.consent import (
    Consent,
    Operation,
    OptOut,
    OptOutKind,
    Person,
    PersonFacts,
    Scope,
    SignalSource,
)
from accord.policy import Policy
from accord.requests import Request, Subjects, SubjectsKind
from builders import activate, agreement

pytestmark = pytest.mark.unit

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
CATEGORIES = [
    "user.behavior",
    "user.behavior.media_consumption",
    "user.content.private",
    "user.social",
    "user.contact.email",
]
PURPOSES = [
    "personalize.content",
    "functional.service",
    "marketing.advertising",
    "marketing.advertising.third_party.targeted",
    "analytics.reporting",
]
FIELDS = ["t.a", "t.b", "t.c"]
JURISDICTIONS = ["US-CA", "US-NY", "US-CO", "DE", "FR", "GB", "CA", "BR"]
PARTIES = ["chirp", "reelix"]
PEOPLE = ["p1", "p2", "p3", "p4"]
TITLES = [None, "t1", "t2"]


def under(general: str, specific: str) -> bool:
    return specific == general or specific.startswith(general + ".")


def touches(requested: str, key: str) -> bool:
    return under(requested, key) or under(key, requested)


def years_ago(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


offsets = st.integers(min_value=-900, max_value=900).map(lambda d: AT + timedelta(days=d))


@st.composite
def clauses(draw: Any, index: int) -> dict[str, Any]:
    basis = draw(st.sampled_from(["consent", "contract", "legitimate_interests"]))
    return {
        "id": f"c{index}",
        "direction": draw(st.sampled_from(["provider_to_recipient", "recipient_to_provider"])),
        "operations": draw(st.lists(st.sampled_from(["read", "write"]), min_size=1, unique=True)),
        "categories": draw(
            st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3, unique=True)
        ),
        "purposes": draw(st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=3, unique=True)),
        "fields": draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)),
        "retention_days": 30,
        "regions": draw(st.sampled_from([["*"], ["US"], ["CA", "LATAM"], ["EU"], ["US-CA", "DE"]])),
        "legal_basis": basis,
        "consent_needed": True if basis == "consent" else draw(st.booleans()),
    }


@st.composite
def registries(draw: Any) -> A.Registered:
    n = draw(st.integers(min_value=1, max_value=2))
    start = draw(st.sampled_from(["2025-01-01", "2026-01-01", "2026-07-01"]))
    doc = agreement(
        *[draw(clauses(i)) for i in range(n)],
        valid_from=start,
        valid_until=draw(st.sampled_from(["2026-05-01", "2027-01-01", "2029-01-01"]))
        if start != "2026-07-01"
        else "2029-01-01",
    )
    return activate(doc, reviewed=draw(st.integers(0, 9)) < 8)


@st.composite
def consents(draw: Any, person: str, controller: str, req: Request | None = None) -> Consent:
    given_at = draw(offsets.filter(lambda t: t < AT + timedelta(days=300)))
    if req is not None and draw(st.integers(0, 9)) < 7:
        # A consent aimed at this request, so that people do get released and checked.
        other = next(p for p in PARTIES if p != controller)
        return Consent(
            id=f"{person}-{draw(st.integers(0, 10**9))}",
            person=person,
            controller=controller,
            recipient=other,
            purposes=frozenset({req.purpose}),
            categories=frozenset(req.categories),
            operations=frozenset({req.operation}),
            jurisdiction="CA",
            given_at=req.at - timedelta(days=draw(st.integers(0, 900))),
            distinct_and_separate=draw(st.booleans()),
            withdrawn_at=draw(st.sampled_from([None, req.at, req.at + timedelta(days=1)])),
            excluded_titles=frozenset(draw(st.lists(st.sampled_from(["t1", "t2"]), max_size=1))),
        )
    expires = draw(st.one_of(st.none(), offsets.filter(lambda t: t > given_at)))
    withdrawn = draw(st.one_of(st.none(), offsets.filter(lambda t: t >= given_at)))
    scope = draw(st.sampled_from([Scope.ONGOING, Scope.ONE_DISCLOSURE]))
    return Consent(
        id=f"{person}-{draw(st.integers(0, 10**9))}",
        person=person,
        controller=controller,
        recipient=draw(st.sampled_from(PARTIES)),
        purposes=frozenset(draw(st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=4))),
        categories=frozenset(draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=4))),
        operations=frozenset(draw(st.lists(st.sampled_from(list(Operation)), min_size=1))),
        jurisdiction="CA",
        given_at=given_at,
        expires_at=expires,
        withdrawn_at=withdrawn,
        distinct_and_separate=draw(st.booleans()),
        scope=scope,
        disclosure="t1" if scope is Scope.ONE_DISCLOSURE else None,
        excluded_titles=frozenset(draw(st.lists(st.sampled_from(["t1", "t2"]), max_size=1))),
    )


@st.composite
def people(draw: Any, controller: str, req: Request | None = None) -> PersonFacts:
    pid = draw(st.sampled_from(PEOPLE))
    records = draw(st.lists(consents(pid, controller, req), max_size=3))
    signals = draw(
        st.lists(
            st.builds(
                OptOut,
                person=st.just(pid),
                controller=st.just(controller),
                kind=st.just(OptOutKind.SALE_SHARING),
                source=st.sampled_from(list(SignalSource)),
                at=offsets,
            ),
            max_size=1,
        )
    )
    return PersonFacts(
        Person(pid, controller, draw(st.sampled_from(JURISDICTIONS))),
        tuple(records),
        tuple(signals),
    )


@st.composite
def requests(draw: Any, reg: A.Registered) -> Request:
    clause_ids = [c.id for c in reg.agreement.clauses] + ["nope"]
    kind = draw(st.sampled_from(list(SubjectsKind)))
    anchor = draw(st.sampled_from(PEOPLE))
    if kind is SubjectsKind.ALL:
        subjects = Subjects()
    elif kind is SubjectsKind.PEOPLE:
        named = frozenset(draw(st.lists(st.sampled_from(PEOPLE), min_size=1)))
        subjects = Subjects(kind, people=named)
    else:
        subjects = Subjects(kind, anchor=anchor)
    common = {
        "agreement": reg.agreement.id,
        "subjects": subjects,
        "on_behalf_of": draw(st.one_of(st.none(), st.sampled_from(PEOPLE))),
        "title": draw(st.sampled_from(TITLES)),
    }
    if draw(st.integers(0, 9)) < 7:
        # Most requests are plausible: they follow one clause, so decisions get to allow.
        c = draw(st.sampled_from(reg.agreement.clauses))
        sender, receiver = sender_receiver(reg.agreement, c)
        op = draw(st.sampled_from(sorted(c.operations)))
        a = reg.agreement
        return Request(
            requester=receiver if op is Operation.READ else sender,
            clause=c.id,
            operation=op,
            purpose=draw(st.sampled_from([p for p in PURPOSES if c.covers_purpose(p)])),
            categories=frozenset(
                draw(st.lists(st.sampled_from(sorted(c.categories)), min_size=1, max_size=2))
            ),
            fields=frozenset(draw(st.lists(st.sampled_from(sorted(c.fields) or FIELDS)))),
            at=datetime.combine(a.valid_from, datetime.min.time(), UTC)
            + timedelta(hours=draw(st.integers(0, 24 * 200))),
            **common,
        )
    return Request(
        requester=draw(st.sampled_from(PARTIES)),
        clause=draw(st.sampled_from(clause_ids)),
        operation=draw(st.sampled_from(list(Operation))),
        purpose=draw(st.sampled_from(PURPOSES)),
        categories=frozenset(draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2))),
        fields=frozenset(draw(st.lists(st.sampled_from(FIELDS), max_size=2))),
        at=AT + timedelta(days=draw(st.integers(-200, 400))),
        **common,
    )


# --- the oracle ---------------------------------------------------------------------------------


def sender_receiver(a: A.Agreement, c: A.Clause) -> tuple[str, str]:
    if c.direction is A.Direction.PROVIDER_TO_RECIPIENT:
        return a.provider, a.recipient
    return a.recipient, a.provider


def consent_ok(
    consents: tuple[Consent, ...],
    *,
    at: datetime,
    recipient: str,
    purpose: str,
    category: str,
    op: Operation,
    title: str | None,
    distinct: bool = False,
    max_years: int | None = None,
) -> bool:
    for k in consents:
        if not (k.given_at <= at):
            continue
        if k.expires_at is not None and at >= k.expires_at:
            continue
        if k.withdrawn_at is not None and at >= k.withdrawn_at:
            continue
        if k.recipient != recipient or op not in k.operations:
            continue
        if not any(under(p, purpose) for p in k.purposes):
            continue
        if not any(under(c, category) for c in k.categories):
            continue
        if distinct and not k.distinct_and_separate:
            continue
        if max_years is not None and not k.given_at > years_ago(at, max_years):
            continue
        if title is not None and title in k.excluded_titles:
            continue
        if k.scope is Scope.ONE_DISCLOSURE and (title is None or k.disclosure != title):
            continue
        return True
    return False


def lawful(
    reg: A.Registered, req: Request, fields: frozenset[str], person: PersonFacts
) -> list[str]:
    """Every reason the release of ``person``'s data under ``req`` would break a rule."""
    a = reg.agreement
    broken: list[str] = []
    if reg.status is not A.Status.ACTIVE or reg.review is None:
        broken.append("agreement not active and reviewed")
    if not (a.valid_from <= req.at.date() < a.valid_until):
        broken.append("outside the agreement's dates")
    c = a.clause(req.clause)
    if c is None:
        return [*broken, "no such clause"]
    sender, receiver = sender_receiver(a, c)
    if req.operation not in c.operations:
        broken.append("operation not in clause")
    if req.requester != (receiver if req.operation is Operation.READ else sender):
        broken.append("wrong party")
    if not any(under(p, req.purpose) for p in c.purposes):
        broken.append("purpose not in clause")
    for cat in req.categories:
        if not any(under(k, cat) for k in c.categories):
            broken.append(f"category {cat} not in clause")
    if c.fields and not fields <= c.fields:
        broken.append("fields beyond the clause")
    jur = person.person.jurisdiction
    if not c.region_set.contains(jur):
        broken.append("outside the clause's regions")
    if req.subjects.kind is SubjectsKind.PEOPLE and person.person.id not in req.subjects.people:
        broken.append("not a named subject")
    private = any(touches(cat, "user.content.private") for cat in req.categories)
    if private and req.on_behalf_of is None:
        broken.append("message contents without a participant asking")
    if req.subjects.relative and req.subjects.anchor != req.on_behalf_of:
        broken.append("someone's friends or threads, not asked for by that person")
    subjects_at = receiver if (private and req.operation is Operation.WRITE) else sender
    counterparty = receiver if subjects_at == sender else sender
    base = {
        "at": req.at,
        "recipient": counterparty,
        "purpose": req.purpose,
        "op": req.operation,
        "title": req.title,
    }
    asker = req.on_behalf_of or req.subjects.anchor
    needs_consent = c.consent_needed or (
        (
            req.on_behalf_of is not None
            or req.subjects.kind in {SubjectsKind.FRIENDS_OF, SubjectsKind.THREADS_OF}
        )
        and person.person.id != asker
    )
    if private and not consent_ok(person.consents, category="user.content.private", **base):
        # The house rule on messages: every participant's own consent, the asker's included
        # (to read a thread), or the sender's own send consent (to post on their behalf).
        broken.append("no consent of their own to this partner reading or sending messages")
    for cat in req.categories:
        if needs_consent and not consent_ok(person.consents, category=cat, **base):
            broken.append(f"no consent for {cat}")
        in_gdpr = jur.split("-")[0] in {"DE", "FR", "GB"}
        if (
            in_gdpr
            and c.legal_basis is A.LegalBasis.CONSENT
            and not consent_ok(person.consents, category=cat, distinct=True, **base)
        ):
            broken.append("no GDPR-grade consent")
    if jur.startswith("US"):
        media = [cat for cat in req.categories if under("user.behavior.media_consumption", cat)]
        if not media and any(
            under(cat, "user.behavior.media_consumption") for cat in req.categories
        ):
            media = ["user.behavior.media_consumption"]
        for cat in media:
            if not consent_ok(person.consents, category=cat, distinct=True, max_years=2, **base):
                broken.append("no VPPA consent")
    cross_context = under("marketing.advertising.third_party", req.purpose) or under(
        "marketing.advertising.profiling", req.purpose
    )
    if (
        cross_context
        and jur in {"US-CA", "US-CO", "US-CT"}
        and any(o.in_force_at(req.at) for o in person.opt_outs)
    ):
        broken.append("opted out of sale/sharing")
    return broken


# --- the properties -----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_nothing_is_released_outside_agreement_consent_and_law(data: st.DataObject) -> None:
    reg = data.draw(registries())
    policy = Policy([reg])
    req = data.draw(requests(reg))
    decision = policy.decide(req)
    event("allowed" if decision.allowed else "refused")
    if not decision.allowed:
        assert decision.reason.startswith("Refused: ")
        assert decision.filter is None
        assert not decision.fields
        return
    assert decision.filter is not None
    controller = decision.filter.controller
    population = data.draw(
        st.lists(people(controller, req), max_size=5, unique_by=lambda f: f.person.id)
    )
    for person in population:
        if decision.filter.admits(person):
            event("a person released")
            broken = lawful(reg, req, decision.fields, person)
            assert not broken, (broken, decision.reason)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_people_are_withheld_only_for_a_reason(data: st.DataObject) -> None:
    """The converse: a person the oracle finds lawful is let through (no over-blocking)."""
    reg = data.draw(registries())
    req = data.draw(requests(reg))
    decision = Policy([reg]).decide(req)
    if not decision.allowed or decision.filter is None:
        return
    for person in data.draw(st.lists(people(decision.filter.controller, req), max_size=4)):
        if not lawful(reg, req, decision.fields, person):
            event("a lawful person")
            assert decision.filter.admits(person), decision.filter.judge(person)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_explanations_agree_with_cedar(data: st.DataObject) -> None:
    """The Python explanation of a refusal names a failing condition exactly when Cedar found no
    permit; when Cedar allows, the explanation finds nothing wrong."""
    reg = data.draw(registries())
    policy = Policy([reg])
    req = data.draw(requests(reg))
    decision = policy.decide(req)
    rule, _ = policy.explain_refusal(req)
    # Forbids (of the law, and Accord's own rule on relations) are not conditions of a permit.
    law_refused = any(r.startswith(("law:", "rule:")) for r in decision.rules)
    if decision.allowed:
        assert rule == "policy:default-deny"
    elif not law_refused:
        assert rule != "policy:default-deny"
        assert decision.rules == (rule,)


def test_a_batch_decides_like_one_by_one() -> None:
    reg = activate(agreement())
    policy = Policy([reg])
    reqs = [
        Request(
            "reelix",
            "chirp-reelix",
            "c1",
            Operation.READ,
            "personalize.content",
            frozenset({"user.behavior.media_consumption"}),
            AT,
        ),
        Request(
            "chirp",
            "chirp-reelix",
            "c1",
            Operation.READ,
            "personalize.content",
            frozenset({"user.behavior.media_consumption"}),
            AT,
        ),
    ]
    batch = policy.decide_batch(reqs)
    assert [d.allowed for d in batch] == [policy.decide(r).allowed for r in reqs] == [True, False]
    assert date(2026, 6, 1) == AT.date()
