"""Decision tables: every rule of agreement, consent and law, with its edges.

Each row states a situation and the outcome for one person: ``released``, ``withheld:<rule>``
(the request is allowed, but this person's data is not let through, and which rule kept it), or
``refused:<rule>`` (the request as a whole is refused, and which rule refused it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord import agreements as A
from accord.consent import Consent, Operation, OptOut, PersonFacts, Scope, add_years
from accord.policy import Policy
from accord.requests import Subjects, SubjectsKind
from builders import NOW, agreement, clause, consent, facts, opt_out, request

pytestmark = pytest.mark.unit

DAY = timedelta(days=1)
TWO_YEARS_AGO = add_years(NOW, -2)


def outcome(policy: Policy, req_overrides: dict[str, Any], person: PersonFacts) -> str:
    decision = policy.decide(request(**req_overrides))
    if not decision.allowed:
        return "refused:" + ",".join(decision.rules)
    assert decision.filter is not None
    failed = decision.filter.judge(person)
    return "released" if not failed else "withheld:" + ",".join(sorted(set(failed)))


def active(*clauses: dict[str, Any], **overrides: Any) -> Policy:
    from builders import activate

    return Policy([activate(agreement(*clauses, **overrides))])


# --- VPPA, 18 U.S.C. 2710(b)(2)(B) -----------------------------------------------------------

VPPA_CLAUSE = clause(
    id="watch",
    categories=["user.behavior.media_consumption"],
    purposes=["personalize.content"],
)


def vppa_consent(**kw: Any) -> Consent:
    return consent("p1", **{"jurisdiction": "US-NY", **kw})


VPPA_ROWS = [
    # consent given two years less a day before the disclosure: in force
    ("US-NY", vppa_consent(given_at=TWO_YEARS_AGO + DAY), {}, "released"),
    # two years and a day: past the statute's two-year limit on advance consent
    ("US-NY", vppa_consent(given_at=TWO_YEARS_AGO - DAY), {}, "withheld:law:vppa.consent"),
    # a record claiming five years is still capped at two
    (
        "US-NY",
        vppa_consent(given_at=TWO_YEARS_AGO - DAY, expires_at=NOW + 3 * 365 * DAY),
        {},
        "withheld:law:vppa.consent",
    ),
    # consent bundled with other terms is not "distinct and separate"
    ("US-NY", vppa_consent(distinct_and_separate=False), {}, "withheld:law:vppa.consent"),
    # withdrawn the day before the disclosure: nothing goes
    (
        "US-NY",
        vppa_consent(withdrawn_at=NOW - DAY),
        {},
        "withheld:clause:chirp-reelix/watch:consent,law:vppa.consent",
    ),
    # withdrawn the day after: the disclosure at NOW was covered
    ("US-NY", vppa_consent(withdrawn_at=NOW + DAY), {}, "released"),
    # the person withdrew for this one title (case by case)
    (
        "US-NY",
        vppa_consent(excluded_titles=frozenset({"t1"})),
        {"title": "t1"},
        "withheld:clause:chirp-reelix/watch:consent,law:vppa.consent",
    ),
    # ... and other titles still go
    ("US-NY", vppa_consent(excluded_titles=frozenset({"t1"})), {"title": "t2"}, "released"),
    # consent at the time of disclosure, for this title
    (
        "US-NY",
        vppa_consent(scope=Scope.ONE_DISCLOSURE, disclosure="t1"),
        {"title": "t1"},
        "released",
    ),
    # a one-disclosure consent does not stretch to another title
    (
        "US-NY",
        vppa_consent(scope=Scope.ONE_DISCLOSURE, disclosure="t1"),
        {"title": "t2"},
        "withheld:clause:chirp-reelix/watch:consent,law:vppa.consent",
    ),
    # outside the US the VPPA does not apply; the clause's own consent suffices
    ("CA", vppa_consent(jurisdiction="CA", distinct_and_separate=False), {}, "released"),
    # a US viewer with no consent at all
    ("US-NY", None, {}, "withheld:clause:chirp-reelix/watch:consent,law:vppa.consent"),
    # consent expired by its own terms before the two years were up
    (
        "US-NY",
        vppa_consent(expires_at=NOW - DAY),
        {},
        "withheld:clause:chirp-reelix/watch:consent,law:vppa.consent",
    ),
]


def test_vppa_does_not_reach_aggregates() -> None:
    """Counts over groups of at least the clause's minimum identify no viewer (2710(a)(3))."""
    report = clause(
        id="report",
        categories=["user.behavior"],
        purposes=["analytics.reporting"],
        granularity="aggregate",
        min_group_size=50,
        legal_basis="legitimate_interests",
        consent_needed=False,
    )
    person = facts("p1", "US-NY")
    req = {"clause": "report", "purpose": "analytics.reporting", "categories": {"user.behavior"}}
    assert outcome(active(report), req, person) == "released"
    # the same viewer, record by record, needs VPPA consent
    records = clause(**{**report, "granularity": "record", "min_group_size": None})
    assert outcome(active(records), req, person) == "withheld:law:vppa.consent"


@pytest.mark.parametrize(("jurisdiction", "record", "req", "expected"), VPPA_ROWS)
def test_vppa(
    jurisdiction: str, record: Consent | None, req: dict[str, Any], expected: str
) -> None:
    policy = active(VPPA_CLAUSE)
    person = facts("p1", jurisdiction, *([record] if record else []))
    assert outcome(policy, {"clause": "watch", **req}, person) == expected


# --- Stored Communications Act and the thread rule --------------------------------------------

INBOX = clause(
    id="inbox",
    categories=["user.content.private"],
    purposes=["essential.service"],
    fields=["messages.body", "messages.sent_at"],
)
SEND = clause(
    id="send",
    direction="recipient_to_provider",
    operations=["write"],
    categories=["user.content.private"],
    purposes=["essential.service"],
)


def message_consent(person: str, op: Operation = Operation.READ) -> Consent:
    return consent(
        person,
        purposes=frozenset({"essential.service"}),
        categories=frozenset({"user.content.private"}),
        operations=frozenset({op}),
        jurisdiction="US-NY",
    )


def test_bulk_read_of_inboxes_is_refused() -> None:
    policy = active(INBOX)
    decision = policy.decide(
        request(clause="inbox", purpose="essential.service", categories={"user.content.private"})
    )
    assert not decision.allowed
    assert decision.rules == ("law:sca.no-bulk-read",)
    assert "never in bulk" in decision.reason


@pytest.mark.parametrize(
    ("consenting", "expected"),
    [
        ({"p1", "p2", "p3"}, True),  # every participant consented: the thread is shown
        ({"p1", "p2"}, False),  # one of three did not: the thread stays hidden
        ({"p1"}, False),  # only the requester: their consent is not the others'
        (set(), False),  # nobody
    ],
)
def test_thread_needs_every_participant(consenting: set[str], expected: bool) -> None:
    policy = active(INBOX)
    decision = policy.decide(
        request(
            clause="inbox",
            purpose="essential.service",
            categories={"user.content.private"},
            on_behalf_of="p1",
            subjects=Subjects(SubjectsKind.THREADS_OF, anchor="p1"),
        )
    )
    assert decision.allowed
    assert decision.filter is not None
    members = [
        facts(p, "US-NY", *([message_consent(p)] if p in consenting else []))
        for p in ("p1", "p2", "p3")
    ]
    assert decision.filter.admits_group(members) is expected


@pytest.mark.parametrize(
    ("on_behalf_of", "ops", "expected"),
    [
        ("p1", {Operation.WRITE}, "released"),  # the sender asked, with send consent
        ("p1", {Operation.READ}, "withheld:clause:chirp-reelix/send:consent,law:sca.send-consent"),
        (None, {Operation.WRITE}, "refused:law:sca.send-on-behalf"),  # nobody asked to send
    ],
)
def test_send_on_behalf(on_behalf_of: str | None, ops: set[Operation], expected: str) -> None:
    policy = active(SEND)
    # The sender's consent is given at chirp, to reelix, to send for them.
    record = consent(
        "p1",
        purposes=frozenset({"essential.service"}),
        categories=frozenset({"user.content.private"}),
        operations=frozenset(ops),
        jurisdiction="US-NY",
    )
    req = {
        "clause": "send",
        "operation": Operation.WRITE,
        "purpose": "essential.service",
        "categories": {"user.content.private"},
        "on_behalf_of": on_behalf_of,
        "subjects": Subjects(SubjectsKind.PEOPLE, people=frozenset({"p1"})),
    }
    assert outcome(policy, req, facts("p1", "US-NY", record)) == expected


# --- GDPR: purpose limitation and demonstrable consent ----------------------------------------

GDPR_ROWS = [
    # purpose in the person's consent but not in the clause: refused for everyone
    (
        clause(purposes=["personalize.content"]),
        {"purpose": "marketing.advertising.third_party.targeted"},
        consent("p1", jurisdiction="DE", purposes=frozenset({"marketing.advertising"})),
        "refused:clause:purpose",
    ),
    # purpose in the clause but not in the consent: this person's data stays
    (
        clause(purposes=["personalize.content", "analytics.reporting"]),
        {"purpose": "analytics.reporting"},
        consent("p1", jurisdiction="DE", purposes=frozenset({"personalize.content"})),
        "withheld:clause:chirp-reelix/c1:consent,law:gdpr.purpose-consent",
    ),
    # purpose in both: released
    (
        clause(),
        {},
        consent("p1", jurisdiction="DE"),
        "released",
    ),
    # consent bundled with other matters does not stand under Art. 7(2)
    (
        clause(),
        {},
        consent("p1", jurisdiction="DE", distinct_and_separate=False),
        "withheld:law:gdpr.purpose-consent",
    ),
    # ... but a Canadian's bundled consent satisfies the clause
    (
        clause(),
        {},
        consent("p1", jurisdiction="CA", distinct_and_separate=False),
        "released",
    ),
    # another lawful basis stated in the clause (contract): no consent needed
    (
        clause(
            categories=["user.account.settings"],
            purposes=["essential.service"],
            legal_basis="contract",
            consent_needed=False,
        ),
        {"purpose": "essential.service", "categories": {"user.account.settings"}},
        None,
        "released",
    ),
]


@pytest.mark.parametrize(("clause_doc", "req", "record", "expected"), GDPR_ROWS)
def test_gdpr(
    clause_doc: dict[str, Any], req: dict[str, Any], record: Consent | None, expected: str
) -> None:
    jurisdiction = record.jurisdiction if record else "DE"
    person = facts("p1", jurisdiction, *([record] if record else []))
    assert outcome(active(clause_doc), req, person) == expected


# --- Opt-outs of sale and sharing, in every place --------------------------------------------
#
# The expected rule of each row is the statute of the person's home (written from the statutes,
# not from the module under test): a person who opted out is withheld from every marketing flow
# wherever they live, and the rule that keeps them out names the law that binds there.

ADS = clause(
    id="segments",
    categories=["user.behavior.media_consumption"],
    purposes=["marketing", "analytics.reporting"],
)
TARGETED = "marketing.advertising.third_party.targeted"


def ads_consent(jurisdiction: str) -> Consent:
    return consent(
        "p1",
        jurisdiction=jurisdiction,
        purposes=frozenset({"marketing", "analytics.reporting"}),
    )


OPT_OUT_ROWS = [
    # a Californian sent Sec-GPC: 1; no cross-context advertising with their data (CCPA/CPRA)
    ("US-CA", (opt_out(),), TARGETED, "law:ccpa.opt-out"),
    # the same through the opt-out form
    ("US-CA", (opt_out(source="form"),), TARGETED, "law:ccpa.opt-out"),
    # the opt-out was revoked before the disclosure
    ("US-CA", (opt_out(revoked_at=NOW - DAY),), TARGETED, ""),
    # an opt-out sent the day after the disclosure did not yet bind it
    ("US-TX", (opt_out(at=NOW + DAY),), TARGETED, ""),
    # Colorado Privacy Act, universal opt-out mechanism (4 CCR 904-3 Rule 5)
    ("US-CO", (opt_out(),), TARGETED, "law:opt-out.us-co"),
    # Connecticut Data Privacy Act, Conn. Gen. Stat. 42-518, 42-520
    ("US-CT", (opt_out(),), TARGETED, "law:opt-out.us-ct"),
    # Texas Data Privacy and Security Act, Tex. Bus. & Com. Code 541.051, 541.055
    ("US-TX", (opt_out(),), TARGETED, "law:opt-out.us-tx"),
    # ... through the form as well as by signal
    ("US-TX", (opt_out(source="form"),), TARGETED, "law:opt-out.us-tx"),
    # Oregon Consumer Privacy Act, ORS 646A.574, 646A.578
    ("US-OR", (opt_out(),), TARGETED, "law:opt-out.us-or"),
    # Delaware Personal Data Privacy Act
    ("US-DE", (opt_out(),), TARGETED, "law:opt-out.us-de"),
    # Montana, New Jersey, New Hampshire, Minnesota, Maryland
    ("US-MT", (opt_out(),), TARGETED, "law:opt-out.us-mt"),
    ("US-NJ", (opt_out(),), TARGETED, "law:opt-out.us-nj"),
    ("US-NH", (opt_out(),), TARGETED, "law:opt-out.us-nh"),
    ("US-MN", (opt_out(),), TARGETED, "law:opt-out.us-mn"),
    ("US-MD", (opt_out(),), TARGETED, "law:opt-out.us-md"),
    # Virginia gives the right but mandates no signal; the signal is honoured as the request
    ("US-VA", (opt_out(),), TARGETED, "law:opt-out.us-va"),
    # Germany: an objection to direct marketing always prevails (GDPR Art. 21(2)-(3), (5))
    ("DE", (opt_out(),), TARGETED, "law:gdpr.object-direct-marketing"),
    # the UK keeps the same right under the UK GDPR
    ("GB", (opt_out(),), TARGETED, "law:gdpr.object-direct-marketing"),
    # Norway is in the EEA
    ("NO", (opt_out(),), TARGETED, "law:gdpr.object-direct-marketing"),
    # Canada: no statute relied on; Accord's own rule keeps the person out
    ("CA", (opt_out(),), TARGETED, "rule:opt-out.elsewhere"),
    # Brazil: the same
    ("BR", (opt_out(),), TARGETED, "rule:opt-out.elsewhere"),
    # New York has no comprehensive privacy law: Accord's own rule
    ("US-NY", (opt_out(),), TARGETED, "rule:opt-out.elsewhere"),
    # no opt-out: released, in a state with a law and in a place without one
    ("US-CA", (), TARGETED, ""),
    ("DE", (), TARGETED, ""),
    ("BR", (), TARGETED, ""),
    # an opt-out of sale/sharing does not reach a purpose that is not marketing
    ("US-CA", (opt_out(),), "analytics.reporting", ""),
    ("DE", (opt_out(),), "analytics.reporting", ""),
    # every kind of advertising in a partner flow is covered, not only "third party"
    ("US-TX", (opt_out(),), "marketing.advertising.first_party.targeted", "law:opt-out.us-tx"),
    ("US-TX", (opt_out(),), "marketing.advertising.first_party.contextual", "law:opt-out.us-tx"),
    ("US-CA", (opt_out(),), "marketing.advertising.profiling", "law:ccpa.opt-out"),
    ("US-CA", (opt_out(),), "marketing.advertising.frequency_capping", "law:ccpa.opt-out"),
    ("BR", (opt_out(),), "marketing.advertising.negative_targeting", "rule:opt-out.elsewhere"),
    ("CA", (opt_out(),), "marketing.advertising", "rule:opt-out.elsewhere"),
    # direct marketing by message is direct marketing (GDPR Art. 21(2))
    ("FR", (opt_out(),), "marketing.communications.email", "law:gdpr.object-direct-marketing"),
]


def marketing_policy() -> Policy:
    return active(ADS)


@pytest.mark.parametrize(("jurisdiction", "opt_outs", "purpose", "withheld_by"), OPT_OUT_ROWS)
def test_opt_outs_everywhere(
    jurisdiction: str, opt_outs: tuple[OptOut, ...], purpose: str, withheld_by: str
) -> None:
    record = ads_consent(jurisdiction)
    person = facts("p1", jurisdiction, record, opt_outs=opt_outs)
    expected = f"withheld:{withheld_by}" if withheld_by else "released"
    # The consent covers every purpose and is distinct and separate, so only the opt-out decides
    # (VPPA and the GDPR's Art. 7 are met).
    assert outcome(marketing_policy(), {"clause": "segments", "purpose": purpose}, person) == (
        expected
    )


@pytest.mark.parametrize(
    ("jurisdiction", "named"),
    [
        # each reason names the statute of the person's home, as a person would look it up
        ("US-CA", "Cal. Civ. Code 1798.120"),
        ("US-CO", "C.R.S. 6-1-1306"),
        ("US-CT", "Conn. Gen. Stat. 42-518"),
        ("US-TX", "Tex. Bus. & Com. Code 541.051"),
        ("US-OR", "ORS 646A.574"),
        ("US-MT", "Montana Consumer Data Privacy Act"),
        ("US-DE", "Delaware Personal Data Privacy Act"),
        ("US-NJ", "New Jersey Data Privacy Act"),
        ("US-NH", "New Hampshire Privacy Act"),
        ("US-MN", "Minnesota Consumer Data Privacy Act"),
        ("US-MD", "Maryland Online Data Privacy Act"),
        ("US-VA", "Va. Code 59.1-577"),
        ("US-UT", "Utah Consumer Privacy Act"),
        ("US-IA", "Iowa Consumer Data Protection Act"),
        ("US-TN", "Tennessee Information Protection Act"),
        ("US-IN", "Indiana Consumer Data Protection Act"),
        ("US-KY", "Kentucky Consumer Data Protection Act"),
        ("US-NE", "Nebraska Data Privacy Act"),
        ("US-RI", "Rhode Island Data Transparency and Privacy Protection Act"),
        ("DE", "Art. 21(2)"),
        ("GB", "UK GDPR"),
        ("CA", "Accord's own rule"),
        ("BR", "Accord's own rule"),
        ("US-NY", "Accord's own rule"),
    ],
)
def test_the_reason_names_the_law_where_the_person_lives(jurisdiction: str, named: str) -> None:
    decision = marketing_policy().decide(request(clause="segments", purpose=TARGETED))
    assert decision.filter is not None
    person = facts("p1", jurisdiction, ads_consent(jurisdiction), opt_outs=(opt_out(),))
    failed = decision.filter.judge(person)
    # one rule keeps them out (so one reason, not another place's), and it names their law
    assert len(failed) == 1, failed
    assert named in decision.filter.reason_for(failed[0])


ANYWHERE = st.sampled_from(
    [
        *(f"US-{s}" for s in ("AL", "AK", "CA", "CO", "CT", "DE", "FL", "IA", "IN", "KY")),
        *(f"US-{s}" for s in ("MD", "MN", "MT", "NE", "NH", "NJ", "NY", "OR", "RI", "TN")),
        *(f"US-{s}" for s in ("TX", "UT", "VA", "WA", "DC", "PR")),
        *("US", "DE", "FR", "IE", "NO", "IS", "LI", "GB", "CH", "CA", "CA-QC", "BR", "MX"),
        *("JP", "IN", "AU", "ZA", "AR", "KR", "NZ", "SG", "GB-SCT", "FR-75"),
    ]
)


@settings(max_examples=200, deadline=None)
@given(ANYWHERE, st.sampled_from(["marketing", TARGETED, "marketing.communications.sms"]))
def test_an_opt_out_keeps_a_person_out_of_marketing_wherever_they_live(
    jurisdiction: str, purpose: str
) -> None:
    """Wherever the person lives, exactly one opt-out rule binds them, and it withholds them."""
    decision = marketing_policy().decide(request(clause="segments", purpose=purpose))
    assert decision.filter is not None
    out = facts("p1", jurisdiction, ads_consent(jurisdiction), opt_outs=(opt_out(),))
    failed = decision.filter.judge(out)
    assert len(failed) == 1
    assert failed[0].startswith(("law:", "rule:opt-out"))
    # the same person without the opt-out is released
    assert decision.filter.judge(facts("p1", jurisdiction, ads_consent(jurisdiction))) == ()


# --- Friends' data ----------------------------------------------------------------------------

FRIENDS = clause(
    id="friends",
    categories=["user.social"],
    purposes=["essential.service"],
    legal_basis="contract",
    consent_needed=False,
)


def friend_consent(person: str) -> Consent:
    return consent(
        person,
        jurisdiction="BR",
        purposes=frozenset({"essential.service"}),
        categories=frozenset({"user.social"}),
    )


@pytest.mark.parametrize(
    ("person", "records", "expected"),
    [
        # the requester themself, under the clause's contract basis
        ("p1", (), "released"),
        # a friend who did not consent: the requester's say-so is not theirs
        ("p2", (friend_consent("p1"),), "withheld:rule:friends.own-consent"),
        # a friend who consented themselves
        ("p2", (friend_consent("p2"),), "released"),
    ],
)
def test_friends_need_their_own_consent(
    person: str, records: tuple[Consent, ...], expected: str
) -> None:
    policy = active(FRIENDS)
    req = {
        "clause": "friends",
        "purpose": "essential.service",
        "categories": {"user.social"},
        "on_behalf_of": "p1",
        "subjects": Subjects(SubjectsKind.FRIENDS_OF, anchor="p1"),
    }
    mine = tuple(r for r in records if r.person == person)
    assert outcome(policy, req, facts(person, "BR", *mine)) == expected


# --- The agreement itself ---------------------------------------------------------------------

CONSENTING = facts("p1", "CA", consent("p1"))


@pytest.mark.parametrize(
    ("build", "req", "expected"),
    [
        # never reviewed: nothing flows, and the reason says so
        (lambda: Policy([A.Registered(agreement())]), {}, "refused:lifecycle:chirp-reelix"),
        # an agreement whose validity ended
        (
            lambda: active(clause(), valid_from="2024-01-01", valid_until="2026-01-01"),
            {},
            "refused:agreement:dates",
        ),
        # not yet valid
        (
            lambda: active(clause(), valid_from="2027-01-01", valid_until="2028-01-01"),
            {},
            "refused:agreement:dates",
        ),
        # the other party may not read under a provider-to-recipient clause
        (lambda: active(clause()), {"requester": "chirp"}, "refused:clause:party"),
        # writing under a read-only clause
        (lambda: active(clause()), {"operation": Operation.WRITE}, "refused:clause:operation"),
        # a category the clause does not list
        (
            lambda: active(clause()),
            {"categories": {"user.contact.email"}},
            "refused:clause:categories",
        ),
        # fields beyond the clause's list
        (
            lambda: active(clause(fields=["watch.title"])),
            {"fields": frozenset({"watch.title", "watch.device"})},
            "refused:clause:fields",
        ),
        # a clause that does not exist
        (lambda: active(clause()), {"clause": "nope"}, "refused:clause:unknown"),
        # an agreement that does not exist
        (lambda: active(clause()), {"agreement": "secret-deal"}, "refused:agreement:unknown"),
        # regions: a clause launched outside the US (the 2011 integration)
        (lambda: active(clause(regions=["CA", "LATAM"])), {}, "released"),
        # all in order
        (lambda: active(clause()), {}, "released"),
    ],
)
def test_agreement_rules(build: Any, req: dict[str, Any], expected: str) -> None:
    assert outcome(build(), req, CONSENTING) == expected


def test_region_rule_keeps_us_people_out() -> None:
    policy = active(clause(regions=["CA", "LATAM"]))
    us = facts("p1", "US-NY", consent("p1", jurisdiction="US-NY"))
    br = facts("p2", "BR", consent("p2", jurisdiction="BR"))
    decision = policy.decide(request())
    assert decision.filter is not None
    assert decision.filter.judge(us) == ("clause:regions",)
    assert decision.filter.admits(br)


def test_suspended_agreement_refuses_with_reason() -> None:
    from builders import activate

    reg = A.advance(activate(agreement()), A.Status.SUSPENDED, at=NOW, by="dpo")
    decision = Policy([reg]).decide(request())
    assert not decision.allowed
    assert decision.rules == ("lifecycle:chirp-reelix",)
    assert "suspended" in decision.reason
