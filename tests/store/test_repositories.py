"""Round trips of every repository on SQLite and PostgreSQL, their errors, and the agreement
lifecycle as the registry persists it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from accord.agreements import Registered, Review, Status, Transition, advance, parse
from accord.consent import (
    Consent,
    Method,
    Operation,
    OptOut,
    OptOutKind,
    Person,
    PersonFacts,
    Scope,
    SignalSource,
)
from accord.errors import (
    ConsentError,
    InvalidInput,
    LifecycleError,
    NotFound,
    StoreError,
)
from accord.store.migrate import open_store
from accord.store.people import ANALYZE_AFTER
from accord.store.repositories import (
    AgreementRepository,
    ConsentRepository,
    OptOutRepository,
    Party,
    PartyRepository,
    PeopleRepository,
)

from .conftest import PARTIES

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def document(version: int = 1, retention_days: int = 30, agreement_id: str = "chirp-reelix") -> str:
    return f"""\
id: {agreement_id}
title: Chirp and Reelix
version: {version}
provider: chirp
recipient: reelix
valid_from: 2026-01-01
valid_until: 2028-01-01
clauses:
  - id: recommendations
    direction: provider_to_recipient
    operations: [read]
    categories: [user.behavior.media_consumption]
    purposes: [personalize.content]
    retention_days: {retention_days}
    regions: [US, GDPR]
"""


def consent(consent_id: str = "k1", person: str = "p1", **overrides: Any) -> Consent:
    fields: dict[str, Any] = {
        "id": consent_id,
        "person": person,
        "controller": "chirp",
        "recipient": "reelix",
        "purposes": frozenset({"personalize.content", "marketing.advertising"}),
        "categories": frozenset({"user.behavior.media_consumption", "user.content"}),
        "jurisdiction": "US-CA",
        "given_at": NOW - timedelta(days=30),
    }
    fields.update(overrides)
    return Consent(**fields)


# --- parties and people ---------------------------------------------------------------------


def test_parties_round_trip(session: Session) -> None:
    repo = PartyRepository(session)
    repo.add(Party("adco", "Ad Co"))
    session.commit()
    assert repo.get("adco") == Party("adco", "Ad Co")
    assert [p.id for p in repo.list()] == ["adco", "chirp", "other", "reelix"]
    assert repo.ensure(Party("adco", "Another name")) == Party("adco", "Ad Co")


def test_a_party_is_registered_once(session: Session) -> None:
    with pytest.raises(InvalidInput, match="party chirp is already registered"):
        PartyRepository(session).add(Party("chirp", "Chirp again"))


def test_an_unknown_party_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound, match="no party 'nobody' is registered"):
        PartyRepository(session).get("nobody")


def test_people_upsert_and_get(session: Session) -> None:
    repo = PeopleRepository(session)
    assert repo.upsert_many([Person("p1", "chirp", "us-ca"), Person("p2", "chirp", "DE")]) == 2
    assert repo.upsert_many([Person("p1", "chirp", "FR")]) == 1  # moved
    session.commit()
    assert repo.get("chirp", "p1") == Person("p1", "chirp", "FR")
    assert repo.get("chirp", "p2") == Person("p2", "chirp", "DE")
    assert repo.get_many("chirp", ["p2", "nobody"]) == {"p2": Person("p2", "chirp", "DE")}
    assert repo.count("chirp") == 2
    assert repo.count("reelix") == 0


def test_people_of_an_unregistered_party_are_refused(session: Session) -> None:
    with pytest.raises(NotFound, match="no party 'nowhere' is registered; add it before"):
        PeopleRepository(session).upsert_many([Person("p1", "nowhere", "DE")])


def test_an_unknown_person_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound, match="party chirp has no person 'p9'"):
        PeopleRepository(session).get("chirp", "p9")


# --- consents and opt-outs ------------------------------------------------------------------


def test_a_consent_round_trips_with_every_field(session: Session) -> None:
    full = consent(
        method=Method.OAUTH_CONSENT_SCREEN,
        notice="notice-v3",
        operations=frozenset({Operation.READ, Operation.WRITE}),
        distinct_and_separate=True,
        withdrawal_method=Method.SETTINGS_PAGE,
        expires_at=NOW + timedelta(days=365),
        scope=Scope.ONE_DISCLOSURE,
        disclosure="title-42",
        excluded_titles=frozenset({"title-7", "title-8"}),
        # An offset other than UTC comes back as the same instant in UTC.
        given_at=datetime(2026, 5, 1, 9, 30, 0, 1, tzinfo=timezone(timedelta(hours=-7))),
    )
    bare = consent("k2", person="p2", jurisdiction="DE")
    repo = ConsentRepository(session)
    repo.add(full)
    repo.add(bare)
    session.commit()
    assert repo.get("k1") == full
    assert repo.get("k1").given_at.tzinfo is UTC
    assert repo.get("k2") == bare
    assert repo.for_person("chirp", "p1") == [full]
    assert repo.for_person("reelix", "p1") == []
    assert repo.count() == 2


def test_a_consent_id_is_recorded_once(session: Session) -> None:
    repo = ConsentRepository(session)
    repo.add(consent())
    with pytest.raises(ConsentError, match="consent k1 is already recorded"):
        repo.add(consent(person="p2"))


def test_a_consent_to_an_unregistered_recipient_is_refused(session: Session) -> None:
    with pytest.raises(NotFound, match="no party 'adco' is registered; add it before recording"):
        ConsentRepository(session).add(consent(recipient="adco"))


def test_an_unknown_consent_is_not_found(session: Session) -> None:
    repo = ConsentRepository(session)
    with pytest.raises(NotFound, match="no consent 'k404' is recorded"):
        repo.get("k404")
    with pytest.raises(NotFound, match="no consent 'k404' is recorded"):
        repo.withdraw("k404", NOW)


def test_withdrawal_is_stored_and_the_earliest_stands(session: Session) -> None:
    repo = ConsentRepository(session)
    repo.add(consent())
    withdrawn = repo.withdraw("k1", NOW)
    session.commit()
    assert withdrawn.withdrawn_at == NOW
    assert repo.get("k1") == withdrawn
    assert not repo.get("k1").in_force_at(NOW)
    assert repo.withdraw("k1", NOW + timedelta(days=1)).withdrawn_at == NOW
    assert repo.withdraw("k1", NOW - timedelta(days=1)).withdrawn_at == NOW - timedelta(days=1)


def test_a_consent_cannot_be_withdrawn_before_it_was_given(session: Session) -> None:
    repo = ConsentRepository(session)
    repo.add(consent())
    with pytest.raises(ConsentError, match="withdrawn before it was given"):
        repo.withdraw("k1", NOW - timedelta(days=31))


def test_bulk_add_loads_consents_and_their_keys(session: Session) -> None:
    many = [
        consent(
            f"k{i}",
            person=f"p{i % 7}",
            excluded_titles=frozenset({f"t{i}"}) if i % 3 else frozenset(),
        )
        for i in range(50)
    ]
    repo = ConsentRepository(session)
    assert repo.bulk_add(iter(many), batch_size=16) == 50
    session.commit()
    assert repo.count() == 50
    assert sorted(repo.for_person("chirp", "p3"), key=lambda c: c.id) == sorted(
        (c for c in many if c.person == "p3"), key=lambda c: c.id
    )


def test_bulk_add_of_a_duplicate_is_a_store_error(session: Session) -> None:
    repo = ConsentRepository(session)
    repo.add(consent())
    with pytest.raises(StoreError, match="recording 1 consents failed: IntegrityError"):
        repo.bulk_add([consent()])


def test_opt_outs_round_trip_and_revoke(session: Session) -> None:
    repo = OptOutRepository(session)
    gpc = OptOut("p1", "chirp", OptOutKind.SALE_SHARING, SignalSource.GPC, NOW - timedelta(days=2))
    form = OptOut(
        "p1", "chirp", OptOutKind.SALE_SHARING, SignalSource.FORM, NOW + timedelta(days=2)
    )
    repo.add(gpc)
    repo.add(form)
    session.commit()
    assert repo.for_person("chirp", "p1") == [gpc, form]
    # Only the opt-out in force at NOW is revoked; the later one has not started.
    assert repo.revoke("chirp", "p1", OptOutKind.SALE_SHARING, NOW) == 1
    assert repo.for_person("chirp", "p1") == [
        OptOut("p1", "chirp", OptOutKind.SALE_SHARING, SignalSource.GPC, gpc.at, NOW),
        form,
    ]
    assert repo.for_person("chirp", "p2") == []


def test_facts_gather_each_persons_consents_and_opt_outs(session: Session) -> None:
    PeopleRepository(session).upsert_many(
        [Person(f"p{i}", "chirp", "US-CA" if i % 2 else "DE") for i in range(1200)]
    )
    PeopleRepository(session).upsert_many([Person("p1", "reelix", "GB")])
    consents = ConsentRepository(session)
    mine = consent("k1", person="p1")
    consents.add(mine)
    consents.add(consent("k2", person="p1", controller="reelix", recipient="chirp"))
    later = consent("k3", person="p1100")
    consents.add(later)
    out = OptOut("p1", "chirp", OptOutKind.SALE_SHARING, SignalSource.GPC, NOW)
    OptOutRepository(session).add(out)
    session.commit()

    everyone = consents.facts("chirp")
    assert len(everyone) == 1200
    assert everyone["p1"] == PersonFacts(Person("p1", "chirp", "US-CA"), (mine,), (out,))
    assert everyone["p1100"].consents == (later,)
    assert everyone["p2"] == PersonFacts(Person("p2", "chirp", "DE"))

    # Named people, across several IN-list chunks; unknown ids are left out.
    named = consents.facts(
        "chirp", [f"p{i}" for i in range(0, 1200, 2)] + ["p1", "p1100", "nobody"]
    )
    assert set(named) == {f"p{i}" for i in range(0, 1200, 2)} | {"p1", "p1100"}
    assert named["p1"] == everyone["p1"]
    assert named["p1100"] == everyone["p1100"]
    assert consents.facts("reelix")["p1"].consents[0].id == "k2"


# --- agreements -----------------------------------------------------------------------------


def test_an_agreement_registers_as_a_draft(session: Session) -> None:
    text = document()
    agreement = parse(text)
    repo = AgreementRepository(session)
    assert repo.register(agreement, text) == Registered(agreement)
    session.commit()
    assert repo.get("chirp-reelix") == Registered(agreement)
    assert repo.document("chirp-reelix") == text
    assert repo.list() == [Registered(agreement)]
    assert repo.list(Status.ACTIVE) == []
    # The same document again changes nothing.
    assert repo.register(agreement, text) == Registered(agreement)


def test_the_document_must_be_the_agreement(session: Session) -> None:
    with pytest.raises(InvalidInput, match="does not parse to that agreement"):
        AgreementRepository(session).register(parse(document()), document(retention_days=60))


def test_an_agreement_between_unregistered_parties_is_refused(session: Session) -> None:
    text = document().replace("recipient: reelix", "recipient: adco")
    with pytest.raises(NotFound, match="no party 'adco' is registered; add it before registering"):
        AgreementRepository(session).register(parse(text), text)


def test_an_unknown_agreement_is_not_found(session: Session) -> None:
    repo = AgreementRepository(session)
    with pytest.raises(NotFound, match="no agreement 'nope' is registered"):
        repo.get("nope")
    with pytest.raises(NotFound, match="no agreement 'nope' is registered"):
        repo.document("nope")
    with pytest.raises(NotFound, match="no agreement 'nope' is registered"):
        repo.save(Registered(parse(document(agreement_id="nope"))))


def _activate(repo: AgreementRepository, reg: Registered) -> Registered:
    review = Review("Dana Privacy", date(2026, 1, 2), "none", True, reg.agreement.version)
    reg = repo.save(advance(reg, Status.IN_REVIEW, at=NOW, by="legal"))
    reg = repo.save(advance(reg, Status.APPROVED, at=NOW, by="dpo", review=review))
    return repo.save(advance(reg, Status.ACTIVE, at=NOW + timedelta(seconds=1), by="dpo"))


def test_the_lifecycle_is_persisted(store: Any) -> None:
    _, sessions = store
    text = document()
    with sessions() as session:
        repo = AgreementRepository(session)
        active = _activate(repo, repo.register(parse(text), text))
        session.commit()
    with sessions() as session:
        loaded = AgreementRepository(session).get("chirp-reelix")
    assert loaded == active
    assert loaded.status is Status.ACTIVE
    assert loaded.in_force(date(2026, 6, 1))
    assert loaded.published
    assert loaded.review == Review("Dana Privacy", date(2026, 1, 2), "none", True, 1)
    assert [(t.to, t.by) for t in loaded.history] == [
        (Status.IN_REVIEW, "legal"),
        (Status.APPROVED, "dpo"),
        (Status.ACTIVE, "dpo"),
    ]
    assert loaded.history[-1].at == NOW + timedelta(seconds=1)


def test_a_new_version_returns_to_draft_and_keeps_its_history(session: Session) -> None:
    repo = AgreementRepository(session)
    active = _activate(repo, repo.register(parse(document()), document()))
    v2 = document(version=2, retention_days=60)
    changed = repo.register(parse(v2), v2, at=NOW + timedelta(days=1), by="legal")
    assert changed.status is Status.DRAFT
    assert changed.agreement.version == 2
    assert changed.history[:3] == active.history
    assert changed.history[3] == Transition(
        Status.DRAFT,
        NOW + timedelta(days=1),
        "legal",
        "version 2 replaces version 1; it needs a new privacy review",
    )
    assert not changed.in_force(date(2026, 6, 1))
    assert repo.document("chirp-reelix") == v2
    # The old review stays on record but does not cover version 2.
    assert changed.review is not None
    assert changed.review.version == 1
    reactivated = _activate(repo, changed)
    assert reactivated.in_force(date(2026, 6, 1))
    assert reactivated.review is not None
    assert reactivated.review.version == 2


def test_changed_terms_need_a_higher_version(session: Session) -> None:
    repo = AgreementRepository(session)
    repo.register(parse(document()), document())
    changed = document(retention_days=90)
    with pytest.raises(LifecycleError, match="changed terms need a higher version than 1"):
        repo.register(parse(changed), changed)


def test_an_ended_agreement_takes_no_new_version(session: Session) -> None:
    repo = AgreementRepository(session)
    reg = repo.register(parse(document()), document())
    repo.save(advance(reg, Status.ENDED, at=NOW, by="dpo"))
    v2 = document(version=2)
    with pytest.raises(LifecycleError, match="has ended; register new terms under a new id"):
        repo.register(parse(v2), v2)


def test_a_stale_copy_is_not_saved(session: Session) -> None:
    repo = AgreementRepository(session)
    draft = repo.register(parse(document()), document())
    repo.save(advance(draft, Status.IN_REVIEW, at=NOW, by="legal"))
    with pytest.raises(StoreError, match="changed since it was loaded; load it again"):
        repo.save(advance(draft, Status.ENDED, at=NOW, by="someone else"))


def test_a_copy_with_other_terms_is_not_saved(session: Session) -> None:
    repo = AgreementRepository(session)
    repo.register(parse(document()), document())
    other = Registered(parse(document(version=2)))
    with pytest.raises(StoreError, match="stored as version 1 with other terms"):
        repo.save(advance(other, Status.IN_REVIEW, at=NOW, by="legal"))


@pytest.mark.postgres
def test_a_large_load_refreshes_postgres_statistics(pg_url: str) -> None:
    engine, sessions = open_store(pg_url)
    n = ANALYZE_AFTER
    try:
        with sessions() as session:
            for party in PARTIES:
                PartyRepository(session).add(party)
            PeopleRepository(session).upsert_many(Person(f"p{i}", "chirp", "DE") for i in range(n))
            ConsentRepository(session).bulk_add(consent(f"k{i}", f"p{i}") for i in range(n))
            # The planner's row estimates, before autovacuum could have made any.
            estimates = session.execute(
                text("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:names)"),
                {"names": ["people", "consents", "consent_purposes"]},
            ).all()
            session.commit()
    finally:
        engine.dispose()
    assert dict(estimates) == {"people": n, "consents": n, "consent_purposes": 2 * n}
