"""A synthetic population for Chirp (a social network) and Reelix (a streaming service).

People get jurisdictions in proportions close to a service with a US, EU, Canadian and Latin
American audience, and consents at rates in the range published opt-in studies report for
social sharing and ad personalisation prompts (a minority say yes; most never answer). Some
consents are old, bundled, withdrawn or limited to one title, so every rule has people to act
on. Everything is drawn from generators seeded from one seed: the same seed gives the same
population, and :mod:`accord.scenario.generate` writes the parties' databases for the same people.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from accord.consent import (
    Consent,
    Method,
    Operation,
    OptOut,
    OptOutKind,
    Person,
    Scope,
    SignalSource,
)

CHIRP, REELIX = "chirp", "reelix"

# (jurisdiction, weight): roughly a North American service with EU and Latin American members.
JURISDICTIONS: tuple[tuple[str, float], ...] = (
    ("US-CA", 0.12),
    ("US-NY", 0.07),
    ("US-TX", 0.09),
    ("US-FL", 0.07),
    ("US-CO", 0.02),
    ("US-IL", 0.04),
    ("US-WA", 0.03),
    ("DE", 0.07),
    ("FR", 0.06),
    ("ES", 0.04),
    ("IE", 0.02),
    ("NL", 0.03),
    ("GB", 0.05),
    ("CA", 0.09),
    ("BR", 0.09),
    ("MX", 0.07),
    ("AR", 0.02),
    ("CO", 0.02),
)
# The catalogue, most popular first (watch events draw from it with Zipf-like weights).
TITLES = tuple(f"title-{i:04d}" for i in range(1000))
LINK_RATE = 0.35


@dataclass(frozen=True, slots=True)
class Population:
    """People at both parties, their consents and opt-outs."""

    people: list[Person]
    consents: list[Consent]
    opt_outs: list[OptOut]


@dataclass(frozen=True, slots=True)
class Ask:
    """One consent prompt: who asks whom, for what, and how often people say yes."""

    name: str
    controller: str
    recipient: str
    purposes: frozenset[str]
    categories: frozenset[str]
    operations: frozenset[Operation]
    rate: float


ASKS = (
    Ask(
        "watch activity on Chirp",
        REELIX,
        CHIRP,
        frozenset({"functional.service"}),
        frozenset({"user.behavior.media_consumption"}),
        frozenset({Operation.READ}),
        0.30,
    ),
    Ask(
        "interest segments for ads",
        REELIX,
        CHIRP,
        frozenset({"marketing.advertising.third_party.targeted"}),
        frozenset({"user.behavior.media_consumption"}),
        frozenset({Operation.READ}),
        0.22,
    ),
    Ask(
        "shown in Reelix's friend picker",
        CHIRP,
        REELIX,
        frozenset({"functional.service"}),
        frozenset({"user.social", "user.name"}),
        frozenset({Operation.READ}),
        0.35,
    ),
    Ask(
        "Reelix messages shown and synced",
        CHIRP,
        REELIX,
        frozenset({"functional.service"}),
        frozenset({"user.content.private"}),
        frozenset({Operation.READ}),
        0.40,
    ),
    Ask(
        "Reelix sends recommendations for me",
        CHIRP,
        REELIX,
        frozenset({"functional.service"}),
        frozenset({"user.content.private"}),
        frozenset({Operation.WRITE}),
        0.25,
    ),
)


def person_id(party: str, index: int) -> str:
    """Each party's own id for its ``index``-th person."""
    return f"{party[0]}{index:07d}"


def homes(people: int, *, seed: int) -> list[str]:
    """The jurisdiction of each of ``people`` people, drawn from :data:`JURISDICTIONS`."""
    places, weights = zip(*JURISDICTIONS, strict=True)
    return random.Random(f"{seed}:homes").choices(places, weights, k=people)


def linked(people: int, *, seed: int) -> bytearray:
    """For each person, 1 if they linked their Reelix and Chirp accounts, else 0.

    About a third do, near the share of streaming members who used a social login or
    sharing integration when one was offered.
    """
    rng = random.Random(f"{seed}:links")
    return bytearray(rng.random() < LINK_RATE for _ in range(people))


def generate(people: int, *, seed: int, at: datetime) -> Population:
    """``people`` people at each party, with consents and opt-outs as of ``at``."""
    rng = random.Random(f"{seed}:consents")
    # Opt-outs outside California and Colorado draw from a stream of their own, so adding them
    # left every other record of a seed as it was.
    elsewhere = random.Random(f"{seed}:opt-outs elsewhere")
    everyone: list[Person] = []
    consents: list[Consent] = []
    opt_outs: list[OptOut] = []
    for i, home in enumerate(homes(people, seed=seed)):
        for party in (CHIRP, REELIX):
            everyone.append(Person(person_id(party, i), party, home))
        for n, ask in enumerate(ASKS):
            if rng.random() < ask.rate:
                consents.append(_consent(rng, ask, person_id(ask.controller, i), home, n=n, at=at))
        if home in {"US-CA", "US-CO"}:
            if rng.random() < 0.15:
                opt_outs.append(_opt_out(rng, i, at))
        elif elsewhere.random() < ELSEWHERE_OPT_OUT_RATE:
            # Texas, Germany, Canada...: the opt-out binds there too (accord.law.optout).
            opt_outs.append(_opt_out(elsewhere, i, at))
    return Population(everyone, consents, opt_outs)


ELSEWHERE_OPT_OUT_RATE = 0.05
"""Share of people outside California and Colorado who opted out of sale and sharing (fewer than
there, where the right and Global Privacy Control are best known)."""


def _opt_out(rng: random.Random, i: int, at: datetime) -> OptOut:
    return OptOut(
        person_id(REELIX, i),
        REELIX,
        OptOutKind.SALE_SHARING,
        rng.choice([SignalSource.GPC, SignalSource.FORM]),
        at - timedelta(days=rng.randint(1, 300)),
    )


def _consent(
    rng: random.Random, ask: Ask, person: str, home: str, *, n: int, at: datetime
) -> Consent:
    # Most consents are recent; a tail is older than two years (VPPA's limit on advance consent).
    age = timedelta(
        days=rng.choice([rng.randint(1, 700), rng.randint(1, 700), rng.randint(700, 900)])
    )
    given = at - age
    roll = rng.random()
    one_title = ask.categories == {"user.behavior.media_consumption"} and roll < 0.05
    return Consent(
        id=f"{person}-{n}",
        person=person,
        controller=ask.controller,
        recipient=ask.recipient,
        purposes=ask.purposes,
        categories=ask.categories,
        jurisdiction=home,
        given_at=given,
        method=Method.IN_APP_DIALOG,
        notice=f"{ask.controller}-notice-2026-01",
        operations=ask.operations,
        # One in ten was collected bundled with the terms of service: not good enough for the
        # VPPA or the GDPR.
        distinct_and_separate=rng.random() >= 0.10,
        withdrawal_method=Method.SETTINGS_PAGE,
        withdrawn_at=at - timedelta(days=rng.randint(0, int(age.days)))
        if 0.05 <= roll < 0.11
        else None,
        scope=Scope.ONE_DISCLOSURE if one_title else Scope.ONGOING,
        disclosure=rng.choice(TITLES[:10]) if one_title else None,
        excluded_titles=frozenset(rng.sample(TITLES[:10], 2))
        if 0.11 <= roll < 0.16
        else frozenset(),
    )


__all__ = [
    "CHIRP",
    "JURISDICTIONS",
    "REELIX",
    "TITLES",
    "Population",
    "generate",
    "homes",
    "linked",
    "person_id",
]
