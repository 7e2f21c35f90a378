"""Reelix's data in Chirp's click model in the reference scenario: trained with it for the
people whose consent covers it, one of them withdrawing and forgotten, and what the data bought.

The scenario's databases hold no impressions to learn from at this scale, so the click log is
simulated on the scenario's own Chirp people (:func:`accord.ads.clicks.random_model`, their ids
the scenario's): the world knows each person's hidden streaming affinity, and Reelix's view of it
(:func:`accord.ads.training.partner_view`) is the partner feature. Who gets it is decided by the
consent records in Accord's store (:func:`accord.ads.training.consent_snapshot`): a Reelix
member's consent to Chirp using their watch history for targeted advertising (the scenario's
"interest segments for ads" prompt, the purpose of the ``chirp-reelix-partner-ads`` agreement),
and no sale/sharing opt-out at either party. The model is sharded (SISA, Bourtoule et al., IEEE
S&P 2021); its card goes to the ledger. Then one person it used withdraws that consent: only the
shard that held their partner features is retrained, and the new card replaces the first.

What the data bought (:func:`accord.ads.value.partner_value`) is measured on a smaller simulated
world whose people carry the same ids, so the same consent snapshot decides whose partner
features rank their ads: a second season ranked with and without them, on the same traffic.
Beside it, the cost: how many people's partner data the model used, and the privacy budget the
lift study spent (from the store's record of every charge).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from accord.ads.cards import ModelCard, absent_from, card_of, record_card
from accord.ads.clicks import random_model, sample_log
from accord.ads.ranking import ROLE_TRAIN, ClickRanker, Settings, roles
from accord.ads.simulate import Season, random_world
from accord.ads.training import (
    ConsentSnapshot,
    People,
    consent_snapshot,
    partner_view,
    past_ctr,
    training_matrix,
)
from accord.ads.value import partner_value
from accord.consent import OptOut, utc
from accord.errors import InvalidInput
from accord.pets.tables import EPSILON_UNIT, privacy_spends
from accord.scenario.partner_ads import AGREEMENT, PartnerAdsShown
from accord.scenario.population import CHIRP, REELIX, person_id
from accord.service import Accord
from accord.store.consents import ConsentRepository
from accord.taxonomy import MEDIA_CONSUMPTION, THIRD_PARTY_TARGETED_ADS

PURPOSE = THIRD_PARTY_TARGETED_ADS
"""The purpose a member's consent must cover for Reelix's data to rank their ads on Chirp."""
CLAUSES = (f"{AGREEMENT}:reelix-viewers",)
CAMPAIGNS = 12
IMPRESSIONS_PER_PERSON = 30
MAX_IMPRESSIONS = 300_000
SETTINGS = Settings(shards=4, rounds=60, min_leaf=50)
VALUE_PEOPLE = 400
"""People in the world the second season is ranked in, with and without partner features."""
VALUE_DAYS = 6
VALUE_START = datetime(2026, 6, 1, tzinfo=UTC)
"""When the value world's seasons begin: a simulation of its own (it writes nothing), on fixed
days so that the same seed gives the same figures."""


@dataclass(frozen=True, slots=True)
class CardShown:
    """A model card as the report shows it, and where the ledger holds it."""

    card: ModelCard
    index: int
    """The card's entry in the ledger."""
    seconds: float
    """CPU seconds the training (or the forgetting) took."""

    @property
    def auc(self) -> float:
        """AUC on the held-out people."""
        return float(self.card.metrics["auc"])

    @property
    def ece(self) -> float:
        """Expected calibration error on the held-out people."""
        return float(self.card.metrics["ece"])


@dataclass(frozen=True, slots=True)
class PartnerShown:
    """Reelix's data in Chirp's ads: audiences and lift, the click model's two cards, and what
    the data bought beside what it cost (no person's id but the forgotten one's, for checking)."""

    ads: PartnerAdsShown
    first: CardShown
    second: CardShown
    withdrawn: str
    """The Chirp person whose Reelix member withdrew the consent after the first model."""
    proven_absent: bool
    """Whether the second card's partner lists, checked against its fingerprints, leave them out."""
    partner_lists: Mapping[str, tuple[str, ...]]
    """The second model's person lists of partner features (``*-partner``), by name."""
    value_people: int
    revenue_with: int
    revenue_without: int
    """Micros: the second season's revenue ranked with and without partner features."""
    clicks_with: int
    clicks_without: int
    auc_with: float
    auc_without: float
    value_partner_people: int
    """People of the value world whose partner features ranked their ads."""
    epsilon_each: float
    """Epsilon summed over the partnership's spends: what a person in every lift study paid."""
    budget_people: int
    """People whose privacy budget the lift studies charged."""
    epsilon_total: float
    """Epsilon summed over every person charged."""

    @property
    def forget_ratio(self) -> float:
        """The forgetting's CPU time over the full training's."""
        return self.second.seconds / self.first.seconds if self.first.seconds else 0.0

    @property
    def revenue_lift(self) -> float:
        """Revenue with partner features over revenue without, less one."""
        base = self.revenue_without
        return self.revenue_with / base - 1.0 if base else 0.0


def snapshot_of(accord: Accord, chirp_people: list[str], at: datetime) -> ConsentSnapshot:
    """Whose partner features Chirp's click model may use at ``at``, in Chirp's ids: the
    members whose consent to Chirp covers :data:`PURPOSE` for their watch history, with no
    sale/sharing opt-out in force at Reelix nor at Chirp."""
    with accord.session() as s:
        reelix = ConsentRepository(s).facts(REELIX)
        chirp = ConsentRepository(s).facts(CHIRP)
    member = {p: person_id(REELIX, int(p[1:])) for p in chirp_people}
    consents = [c for f in reelix.values() for c in f.consents]
    opt_outs: list[OptOut] = [o for f in reelix.values() for o in f.opt_outs]
    back = {m: p for p, m in member.items()}
    # A Chirp opt-out bars the same person: counted against their Reelix id.
    opt_outs += [
        replace(o, person=member[p]) for p, f in chirp.items() if p in member for o in f.opt_outs
    ]
    snap = consent_snapshot(
        list(member.values()),
        consents,
        opt_outs,
        at=at,
        recipient=CHIRP,
        purpose=PURPOSE,
        category=MEDIA_CONSUMPTION,
        clauses=CLAUSES,
    )
    return ConsentSnapshot(
        snap.at, frozenset(back[m] for m in snap.joined), frozenset(), PURPOSE, CLAUSES
    )


def run_partner_model(
    accord: Accord,
    chirp_people: list[str],
    ads: PartnerAdsShown,
    *,
    seed: int,
    at: datetime | None = None,
) -> PartnerShown:
    """Train, record, withdraw, forget and value Chirp's click model (see the module docstring).

    The model is trained at ``at`` (now by default, and never before now: a consent withdrawn
    earlier in this run must not look in force to it), the withdrawal and the second model
    come after it."""
    n = len(chirp_people)
    if n < 2:
        raise InvalidInput("the click model needs at least two people")
    model = random_model(n, CAMPAIGNS, seed=seed)
    impressions = min(IMPRESSIONS_PER_PERSON * n, MAX_IMPRESSIONS)
    log = sample_log(model, impressions, seed=seed)
    history = sample_log(model, impressions, seed=seed + 1)
    people = People(
        tuple(chirp_people),
        model.person_age,
        model.person_interests,
        past_ctr(history, n),
        partner_view(model.affinity, seed=seed),
    )
    at = _after(at)
    before = snapshot_of(accord, chirp_people, at)
    first = ClickRanker.fit(training_matrix(log, people, model.topics, before), before, SETTINGS)
    first_card = card_of(first, platform=CHIRP, trained_at=at, replaces=_last_card(accord))
    first_shown = CardShown(first_card, record_card(accord.ledger, first_card).index, first.seconds)

    # One person the model used withdraws their consent; the next model forgets them.
    later = _after(at + timedelta(minutes=1))
    role = roles(people.ids)
    who = next(
        (
            p
            for i, p in enumerate(people.ids)
            if role[i] == ROLE_TRAIN and p in before.joined and _withdraw(accord, p, later)
        ),
        None,
    )
    if who is None:
        raise InvalidInput("nobody the click model trained on has partner features to withdraw")
    retrained_at = _after(later + timedelta(seconds=1))
    after = snapshot_of(accord, chirp_people, retrained_at)
    second = first.forget(training_matrix(log, people, model.topics, after), [who], after)
    second_card = card_of(second, platform=CHIRP, trained_at=retrained_at, replaces=first_card)
    second_shown = CardShown(
        second_card, record_card(accord.ledger, second_card).index, second.seconds
    )
    lists = {k: v for k, v in second.shard_lists().items() if k.endswith("-partner")}

    size = min(VALUE_PEOPLE, n)
    world = random_world(size, CAMPAIGNS, seed=seed, start=VALUE_START - timedelta(days=1))
    start = VALUE_START.date()
    worth = partner_value(
        world,
        Season(start, days=VALUE_DAYS, seed=seed),
        Season(start + timedelta(days=VALUE_DAYS), days=max(VALUE_DAYS // 3, 1), seed=seed + 1),
        partner_view(world.model.affinity, seed=seed),
        ConsentSnapshot(
            retrained_at,
            after.joined & {p.person for p in world.people},
            frozenset(),
            PURPOSE,
            CLAUSES,
        ),
        settings=Settings(shards=2, rounds=60, min_leaf=50),
    )
    each, charged, total = _budget_spent(accord)
    return PartnerShown(
        ads=ads,
        first=first_shown,
        second=second_shown,
        withdrawn=who,
        proven_absent=absent_from(second_card, who, lists),
        partner_lists=lists,
        value_people=size,
        revenue_with=worth.with_partner.result.spend,
        revenue_without=worth.chirp_only.result.spend,
        clicks_with=worth.with_partner.result.clicks,
        clicks_without=worth.chirp_only.result.clicks,
        auc_with=worth.with_partner.auc,
        auc_without=worth.chirp_only.auc,
        value_partner_people=worth.partner_people,
        epsilon_each=each,
        budget_people=charged,
        epsilon_total=total,
    )


def _after(at: datetime | None) -> datetime:
    """``at``, or now if that is later: the run's ledger entries and consent changes by either
    party's clock stay in order."""
    now = datetime.now(UTC)
    return now if at is None else max(utc(at), now)


def _withdraw(accord: Accord, chirp_person: str, at: datetime) -> bool:
    """Withdraw the Reelix member's consent covering :data:`PURPOSE`, if one is in force."""
    member = person_id(REELIX, int(chirp_person[1:]))
    for consent in accord.consents(REELIX, member):
        if (
            consent.in_force_at(at)
            and consent.covers(recipient=CHIRP, purpose=PURPOSE, category=MEDIA_CONSUMPTION)
            and consent.withdrawn_at is None
        ):
            accord.withdraw(consent.id, at)
            return True
    return False


def _last_card(accord: Accord) -> str | None:
    for leaf in accord.ledger.recent(200):
        entry = leaf.entry()
        if entry.get("kind") == "model_card" and entry.get("platform") == CHIRP:
            return str(entry["model"])
    return None


def _budget_spent(accord: Accord) -> tuple[float, int, float]:
    """The partnership's privacy spends: the largest epsilon a person paid, how many people
    were charged (summed over spends), and epsilon summed over them."""
    p = privacy_spends.c
    with accord.engine.connect() as conn:
        each, people, total = conn.execute(
            select(
                func.coalesce(func.sum(p.epsilon), 0),
                func.coalesce(func.sum(p.people), 0),
                func.coalesce(func.sum(p.epsilon * p.people), 0),
            ).where(p.agreement == AGREEMENT)
        ).one()
    return int(each) / EPSILON_UNIT, int(people), int(total) / EPSILON_UNIT


__all__ = ["CLAUSES", "PURPOSE", "CardShown", "PartnerShown", "run_partner_model", "snapshot_of"]
