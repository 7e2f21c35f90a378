"""The click model: partner features only as consent allows, calibrated, better than the smoothed
rate, and a person forgotten by retraining the one shard that held them, as its card proves."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.ads.cards import absent_from, card_of, entry_of, record_card
from accord.ads.clicks import ClickLog, ClickModel, random_model, sample_log
from accord.ads.ranking import (
    ROLE_CALIBRATE,
    ROLE_TEST,
    ROLE_TRAIN,
    ClickRanker,
    RankingPredictor,
    Settings,
    roles,
    shards_of,
    smoothed_ctr_auc,
)
from accord.ads.simulate import Season, World, random_world
from accord.ads.training import (
    PARTNER_FEATURES,
    ConsentSnapshot,
    People,
    consent_snapshot,
    partner_view,
    past_ctr,
    person_list_sha256,
    training_matrix,
)
from accord.ads.value import partner_value
from accord.consent import Consent, OptOut, OptOutKind, SignalSource
from accord.errors import InvalidInput
from accord.ledger.entries import ENTRY_KINDS, ModelCardEntry
from accord.service import Accord

pytestmark = pytest.mark.unit

AT = datetime(2026, 6, 1, tzinfo=UTC)
PEOPLE = 2_000
SHARDS = 4
FAST = Settings(shards=SHARDS, rounds=60, min_leaf=50)


@cache
def world() -> tuple[ClickModel, ClickLog, People]:
    model = random_model(PEOPLE, 10, seed=3)
    log = sample_log(model, 120_000, seed=3)
    ids = tuple(f"c{i:06d}" for i in range(PEOPLE))
    people = People(
        ids,
        model.person_age,
        model.person_interests,
        past_ctr(sample_log(model, 120_000, seed=4), PEOPLE),
        partner_view(model.affinity, seed=3),
    )
    return model, log, people


def everyone_joined(people: People) -> ConsentSnapshot:
    return ConsentSnapshot(AT, frozenset(people.ids), frozenset(), clauses=("chirp-reelix:rank",))


@cache
def trained() -> ClickRanker:
    model, log, people = world()
    snapshot = everyone_joined(people)
    return ClickRanker.fit(training_matrix(log, people, model.topics, snapshot), snapshot, FAST)


# --- the consent snapshot, against the records read directly -------------------------------

RECIPIENT = "chirp"
STATES = (
    "consented",  # in force, covers profiling for ads: joined
    "broad",  # a consent to all of marketing.advertising covers profiling: joined
    "withdrawn",  # withdrawn before the snapshot: not joined
    "withdrawn_later",  # withdrawn after the snapshot: joined at the snapshot
    "expired",  # expired before the snapshot: not joined
    "other_purpose",  # consent for analytics only: not joined
    "other_recipient",  # consent to someone else: not joined
    "opted_out",  # consented but opted out of sale/sharing: not joined
    "opt_out_revoked",  # an opt-out since revoked: joined
    "erased",  # erased: no rows at all
    "nothing",  # no record: not joined
)


def records(
    states: list[str],
) -> tuple[list[str], list[Consent], list[OptOut], set[str]]:
    ids = [f"c{i:06d}" for i in range(len(states))]
    consents, opt_outs, erased = [], [], set()
    before = AT - timedelta(days=30)
    for n, (person, state) in enumerate(zip(ids, states, strict=True)):
        purposes = {"marketing.advertising.profiling"}
        recipient = RECIPIENT
        withdrawn = expires = None
        if state == "broad":
            purposes = {"marketing.advertising"}
        elif state == "withdrawn":
            withdrawn = AT - timedelta(days=1)
        elif state == "withdrawn_later":
            withdrawn = AT + timedelta(days=1)
        elif state == "expired":
            expires = AT - timedelta(seconds=1)
        elif state == "other_purpose":
            purposes = {"analytics.reporting"}
        elif state == "other_recipient":
            recipient = "someone-else"
        if state != "nothing":
            consents.append(
                Consent(
                    id=f"k{n}",
                    person=person,
                    controller="reelix",
                    recipient=recipient,
                    purposes=frozenset(purposes),
                    categories=frozenset({"user.behavior.media_consumption"}),
                    jurisdiction="US-CA",
                    given_at=before,
                    expires_at=expires,
                    withdrawn_at=withdrawn,
                )
            )
        if state in {"opted_out", "opt_out_revoked"}:
            revoked = AT - timedelta(hours=1) if state == "opt_out_revoked" else None
            opt_outs.append(
                OptOut(person, "chirp", OptOutKind.SALE_SHARING, SignalSource.GPC, before, revoked)
            )
        if state == "erased":
            erased.add(person)
    return ids, consents, opt_outs, erased


def oracle_joined(person: str, consents: list[Consent], opt_outs: list[OptOut]) -> bool:
    """From the records alone: a consent in force at AT, to Chirp, whose purposes include
    profiling for advertising or a key above it, for media consumption; and no opt-out then."""
    ok = False
    for c in consents:
        if c.person != person or c.recipient != RECIPIENT:
            continue
        in_force = (
            c.given_at <= AT
            and (c.withdrawn_at is None or c.withdrawn_at > AT)
            and (c.expires_at is None or c.expires_at > AT)
        )
        purpose = any(
            p in {"marketing", "marketing.advertising", "marketing.advertising.profiling"}
            for p in c.purposes
        )
        ok = ok or (in_force and purpose and "user.behavior.media_consumption" in c.categories)
    opted = any(
        o.person == person and o.at <= AT and (o.revoked_at is None or o.revoked_at > AT)
        for o in opt_outs
    )
    return ok and not opted


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(STATES), min_size=1, max_size=40), st.integers(0, 2**32 - 1))
def test_the_matrix_joins_partner_features_only_where_the_records_allow(
    states: list[str], seed: int
) -> None:
    ids, consents, opt_outs, erased = records(states)
    n = len(ids)
    model = random_model(n, 5, seed=seed % 1000)
    log = sample_log(model, 20 * n, seed=seed)
    people = People(
        tuple(ids),
        model.person_age,
        model.person_interests,
        np.zeros(n),
        partner_view(model.affinity, seed=seed),
    )
    snapshot = consent_snapshot(
        ids, consents, opt_outs, erased, at=AT, recipient=RECIPIENT, clauses=("a:b",)
    )
    matrix = training_matrix(log, people, model.topics, snapshot)
    partner = matrix.x[:, [matrix.columns.index(c) for c in PARTNER_FEATURES]]
    for i, person in enumerate(ids):
        logged = int((log.person == i).sum())
        rows = matrix.row_person == i
        if person in erased:
            assert not rows.any()  # an erased person's rows are gone
            continue
        assert int(rows.sum()) == logged  # everyone else keeps every row of their own
        if oracle_joined(person, consents, opt_outs):
            assert not np.isnan(partner[rows]).any()
            assert np.allclose(partner[rows], people.partner[i])
        else:
            assert np.isnan(partner[rows]).all()  # missing, never a zero


def test_each_state_joins_as_its_comment_says() -> None:
    ids, consents, opt_outs, erased = records(list(STATES))
    snapshot = consent_snapshot(ids, consents, opt_outs, erased, at=AT, recipient=RECIPIENT)
    joined = {state for person, state in zip(ids, STATES, strict=True) if person in snapshot.joined}
    assert joined == {"consented", "broad", "withdrawn_later", "opt_out_revoked"}


# --- the model ------------------------------------------------------------------------------


def test_the_model_is_calibrated_and_beats_the_smoothed_rate() -> None:
    model, log, people = world()
    ranker = trained()
    assert ranker.metrics is not None
    matrix = training_matrix(log, people, model.topics, everyone_joined(people))
    assert ranker.metrics.auc > smoothed_ctr_auc(matrix) + 0.05
    assert ranker.metrics.ece < 0.01
    assert ranker.metrics.auc <= ranker.metrics.bayes_auc + 0.01
    # calibrated: the mean prediction on held-out people is the click rate there
    test = np.isin(matrix.row_person, list(np.flatnonzero(roles(people.ids) == ROLE_TEST)))
    assert abs(ranker.predict(matrix.x[test]).mean() - matrix.y[test].mean()) < 0.005


def test_partner_features_lift_the_auc() -> None:
    model, log, people = world()
    snapshot = everyone_joined(people)
    alone = ClickRanker.fit(
        training_matrix(log, people, model.topics, snapshot, partner=False),
        snapshot,
        replace(FAST, shards=1),
    )
    both = ClickRanker.fit(
        training_matrix(log, people, model.topics, snapshot), snapshot, replace(FAST, shards=1)
    )
    assert alone.metrics is not None
    assert both.metrics is not None
    assert both.metrics.auc > alone.metrics.auc


# --- forgetting, and the cards that prove it ------------------------------------------------


def a_trained_person(ranker: ClickRanker, people: People) -> str:
    role = roles(people.ids)
    return next(p for n, p in enumerate(people.ids) if role[n] == ROLE_TRAIN)


def test_a_withdrawal_retrains_only_the_persons_shard_and_the_card_shows_it() -> None:
    model, log, people = world()
    old = trained()
    person = a_trained_person(old, people)
    shard = int(shards_of([person], SHARDS)[0])
    withdrawn = ConsentSnapshot(
        AT + timedelta(days=1), frozenset(people.ids) - {person}, frozenset()
    )
    matrix = training_matrix(log, people, model.topics, withdrawn)
    new = old.forget(matrix, [person], withdrawn)
    assert new.retrained == (shard,)
    for k in range(SHARDS):
        assert (new.shards[k].booster is old.shards[k].booster) == (k != shard)
    old_card = card_of(old, platform="chirp", trained_at=AT)
    new_card = card_of(new, platform="chirp", trained_at=AT + timedelta(days=1), replaces=old_card)
    assert new_card.replaces == old_card.model
    name = f"shard-{shard}-partner"
    assert new_card.list_named(name).sha256 != old_card.list_named(name).sha256
    assert (
        new_card.list_named(f"shard-{shard}").sha256 == old_card.list_named(f"shard-{shard}").sha256
    )
    # The lists, checked against each card: the person's partner data is in the old, not the new.
    old_list = {name: old.shard_lists()[name]}
    new_list = {name: new.shard_lists()[name]}
    assert not absent_from(old_card, person, old_list)
    assert absent_from(new_card, person, new_list)
    # An independent fingerprint of the list, written from the card's definition
    expected = hashlib.sha256(
        "".join(f"{p}\n" for p in sorted(new_list[name])).encode()
    ).hexdigest()
    assert new_card.list_named(name).sha256 == expected


def test_an_erasure_removes_the_persons_rows_and_a_doctored_list_proves_nothing() -> None:
    model, log, people = world()
    old = trained()
    person = a_trained_person(old, people)
    shard = int(shards_of([person], SHARDS)[0])
    snapshot = ConsentSnapshot(
        AT + timedelta(days=1), frozenset(people.ids) - {person}, frozenset({person})
    )
    matrix = training_matrix(log, people, model.topics, snapshot)
    assert not (matrix.row_person == people.ids.index(person)).any()
    new = old.forget(matrix, [person], snapshot)
    card = card_of(new, platform="chirp", trained_at=AT + timedelta(days=1))
    lists = {k: v for k, v in new.shard_lists().items() if k.startswith(f"shard-{shard}")}
    assert absent_from(card, person, lists)
    assert all(person not in v for v in new.shard_lists().values())
    doctored = {f"shard-{shard}": (*lists[f"shard-{shard}"], "someone")}
    with pytest.raises(InvalidInput, match="not the one"):
        absent_from(card, person, doctored)
    assert new.metrics is not None
    assert old.metrics is not None
    assert abs(new.metrics.auc - old.metrics.auc) < 0.01


def test_a_calibration_persons_withdrawal_retrains_no_shard_but_refits_the_calibration() -> None:
    model, log, people = world()
    old = trained()
    role = roles(people.ids)
    person = next(
        p for n, p in enumerate(people.ids) if role[n] == ROLE_CALIBRATE and (log.person == n).any()
    )
    snapshot = ConsentSnapshot(AT, frozenset(people.ids) - {person}, frozenset())
    new = old.forget(training_matrix(log, people, model.topics, snapshot), [person], snapshot)
    assert new.retrained == ()
    assert all(a.booster is b.booster for a, b in zip(old.shards, new.shards, strict=True))
    card = card_of(new, platform="chirp", trained_at=AT)
    assert person in old.shard_lists()["calibration-partner"]
    lists = {"calibration-partner": new.shard_lists()["calibration-partner"]}
    assert absent_from(card, person, lists)
    assert person in new.shard_lists()["calibration"]  # Chirp's own rows stay


def test_forgetting_someone_unknown_is_refused() -> None:
    model, log, people = world()
    snapshot = everyone_joined(people)
    matrix = training_matrix(log, people, model.topics, snapshot)
    with pytest.raises(InvalidInput, match="not in the log"):
        trained().forget(matrix, ["nobody"], snapshot)


@given(st.lists(st.text(min_size=1, max_size=12), max_size=30), st.integers(1, 16))
def test_shards_and_fingerprints_are_stable_and_order_free(people: list[str], shards: int) -> None:
    a = shards_of(people, shards)
    assert list(a) == list(shards_of(list(people), shards))
    assert all(0 <= k < shards for k in a)
    assert person_list_sha256(people) == person_list_sha256(reversed(people))


@pytest.fixture
def accord(db_url: str, tmp_path: Path) -> Iterator[Accord]:
    with Accord.open(db_url, tmp_path) as opened:
        yield opened


@pytest.mark.integration
def test_a_card_is_a_ledger_entry_that_names_nobody(accord: Accord) -> None:
    _, _, people = world()
    card = card_of(trained(), platform="chirp", trained_at=AT)
    receipt = record_card(accord.ledger, card)
    leaf = accord.ledger.leaf(receipt.index).entry()
    assert leaf["kind"] == "model_card"
    assert leaf["model"] == card.model
    assert leaf["subjects"] == []
    _, log, _ = world()
    role = roles(people.ids)
    held_in = {int(i) for i in np.unique(log.person) if role[i] != ROLE_TEST}
    assert json.loads(leaf["card"])["people"] == card.people == len(held_in)
    assert not any(p in leaf["card"] for p in people.ids[:50])
    assert entry_of(card).encode() == accord.ledger.leaf(receipt.index).data


# --- the value of the partner's data ---------------------------------------------------------


def a_world(people: int, campaigns: int, seed: int) -> World:
    return random_world(people, campaigns, seed=seed, start=AT - timedelta(days=1))


def test_a_second_season_ranked_with_partner_features_predicts_its_clicks_better() -> None:
    world = a_world(1_000, 8, seed=5)
    ids = frozenset(p.person for p in world.people)
    opted = next(iter(sorted(ids)))
    snapshot = ConsentSnapshot(AT, ids - {opted}, frozenset())
    value = partner_value(
        world,
        Season(AT.date(), days=12, seed=1),
        Season(AT.date() + timedelta(days=12), days=4, seed=2),
        partner_view(world.model.affinity, seed=5),
        snapshot,
        settings=Settings(shards=2, rounds=60, min_leaf=50),
    )
    assert value.partner_people == len(ids) - 1
    # On the same impressions, of a season after the one the models learned from.
    assert value.with_partner.auc > value.chirp_only.auc
    # Ranked by the better prediction, the same traffic clicked more.
    assert value.with_partner.result.clicks > value.chirp_only.result.clicks
    # The same traffic: the same people opened their feeds as often in each run.
    assert value.with_partner.result.requests == value.chirp_only.result.requests
    assert value.with_partner.result.spend > 0
    assert value.chirp_only.result.spend > 0


def test_a_predictor_uses_no_partner_data_of_someone_not_joined_or_opted_out() -> None:
    world = a_world(50, 4, seed=6)
    log = sample_log(world.model, 5_000, seed=6)
    people = People(
        tuple(p.person for p in world.people),
        world.model.person_age,
        world.model.person_interests,
        np.zeros(50),
        partner_view(world.model.affinity, seed=6),
    )
    snapshot = ConsentSnapshot(AT, frozenset(people.ids), frozenset())
    ranker = ClickRanker.fit(
        training_matrix(log, people, world.model.topics, snapshot),
        snapshot,
        replace(FAST, shards=1),
    )
    person = world.people[0]
    nobody = People(
        people.ids, people.age_band, people.interests, people.past_ctr, np.full((50, 1), np.nan)
    )
    without = RankingPredictor(ranker, nobody, world.model.topics, frozenset())(
        person, np.ones(4, bool)
    )
    joined = RankingPredictor(ranker, people, world.model.topics, frozenset(people.ids))
    left_out = RankingPredictor(
        ranker, people, world.model.topics, frozenset(people.ids) - {person.person}
    )
    opted = replace(person, opted_out=True)
    # Not joined, or opted out on the request: the same as no partner data at all.
    assert np.array_equal(left_out(person, np.ones(4, bool)), without)
    assert np.array_equal(joined(opted, np.ones(4, bool)), without)
    assert joined(person, np.ones(4, bool)).shape == (4,)


@given(
    model=st.text(min_size=1, max_size=20),
    replaces=st.none() | st.text(max_size=20),
    people=st.integers(0, 2**53 - 1),
    card=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
)
def test_card_leaves_are_exactly_rfc8785_and_decode_to_their_kind(
    model: str, replaces: str | None, people: int, card: dict[str, str]
) -> None:
    entry = ModelCardEntry(
        agreement=None,
        reason="trained",
        people=people,
        platform="chirp",
        model=model,
        replaces=replaces,
        card=json.dumps(card),
    )
    assert entry.encode() == rfc8785.dumps(entry.leaf())
    leaf = json.loads(entry.encode())
    assert ENTRY_KINDS[leaf["kind"]] is ModelCardEntry
    assert leaf["subjects"] == []


def test_a_card_entry_names_nobody_and_holds_a_json_object() -> None:
    with pytest.raises(InvalidInput, match="must not name"):
        ModelCardEntry(
            agreement=None,
            reason="x",
            about=("c0000001",),
            platform="chirp",
            model="m",
            card="{}",
        )
    with pytest.raises(InvalidInput, match="JSON object"):
        ModelCardEntry(agreement=None, reason="x", platform="chirp", model="m", card="[1]")


@cache
def small() -> tuple[ClickModel, ClickLog, People, ClickRanker]:
    model = random_model(300, 4, seed=9)
    log = sample_log(model, 30_000, seed=9)
    ids = tuple(f"s{i:04d}" for i in range(300))
    people = People(
        ids,
        model.person_age,
        model.person_interests,
        np.zeros(300),
        partner_view(model.affinity, seed=9),
    )
    snapshot = ConsentSnapshot(AT, frozenset(ids), frozenset())
    tiny = Settings(shards=SHARDS, rounds=5, min_leaf=20)
    return (
        model,
        log,
        people,
        ClickRanker.fit(training_matrix(log, people, model.topics, snapshot), snapshot, tiny),
    )


@settings(max_examples=15, deadline=None)
@given(st.sets(st.integers(0, 299), min_size=1, max_size=4), st.booleans())
def test_forgetting_retrains_exactly_the_shards_that_held_the_peoples_training_rows(
    chosen: set[int], erase: bool
) -> None:
    model, log, people, old = small()
    gone = {people.ids[i] for i in chosen}
    snapshot = ConsentSnapshot(
        AT, frozenset(people.ids) - gone, frozenset(gone) if erase else frozenset()
    )
    new = old.forget(training_matrix(log, people, model.topics, snapshot), gone, snapshot)
    role = roles(people.ids)
    # From the definition: a shard is retrained when one of them trained in it, no other.
    expected = sorted(
        {int(shards_of([people.ids[i]], SHARDS)[0]) for i in chosen if role[i] == ROLE_TRAIN}
    )
    assert list(new.retrained) == expected
    for k in range(SHARDS):
        assert (new.shards[k].booster is old.shards[k].booster) == (k not in expected)
    lists = new.shard_lists()
    for person in gone:
        assert all(person not in v for name, v in lists.items() if name.endswith("partner"))
        if erase:
            assert all(person not in v for v in lists.values())
