"""Chirp people and Reelix members with the same e-mail addresses, their consents and opt-outs,
Reelix's watch rows, and the agreement under which Reelix's viewers are matched into Chirp.

Person ``i`` is ``c{i}`` at Chirp and ``m{i}`` at Reelix, at ``person{i}@example.org`` on both.
The ``partner-audiences`` agreement has two match-only clauses for third-party targeted
advertising: Chirp's addresses go out under ``chirp-match``, Reelix's viewers' under
``reelix-viewers`` (which names watch history, since being in the list says what one watched).

Who may take part, by ``i`` (the oracle of the tests reads these records, not the code):

* every Chirp person consented to Reelix matching them, but ``i % 11 == 3`` opted out (GPC);
* every Reelix member consented to Chirp, except ``i % 7 == 5``; ``i % 13 == 4`` opted out;
* a Reelix member watched drama when ``i`` is even, comedy otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml_text
from accord import agreements as ag
from accord.ads.audiences import PartnerMatch
from accord.ads.model import Advertiser, Audience
from accord.ads.store import AdsStore
from accord.consent import Consent, Method, Operation, OptOut, OptOutKind, Person, SignalSource
from accord.service import Accord

NOW = datetime.now(UTC)
EMAIL = "user.contact.email"
WATCHED = "user.behavior.media_consumption"
ADS = "marketing.advertising.third_party.targeted"
AGREEMENT_ID = "partner-audiences"
HOME = "US-CA"

AGREEMENT = {
    "id": AGREEMENT_ID,
    "title": "Reelix audiences on Chirp",
    "provider": "chirp",
    "recipient": "reelix",
    "valid_from": "2026-01-01",
    "valid_until": "2099-01-01",
    "clauses": [
        {
            "id": "chirp-match",
            "direction": "provider_to_recipient",
            "operations": ["read"],
            "categories": [EMAIL],
            "purposes": [ADS],
            "granularity": "match_only",
            "retention_days": 0,
            "legal_basis": "consent",
        },
        {
            "id": "reelix-viewers",
            "direction": "recipient_to_provider",
            "operations": ["read"],
            "categories": [EMAIL, WATCHED],
            "purposes": [ADS],
            "granularity": "match_only",
            "retention_days": 0,
            "legal_basis": "consent",
        },
        {
            "id": "lift-report",
            "direction": "provider_to_recipient",
            "operations": ["read"],
            "categories": ["user.behavior"],
            "purposes": ["analytics.reporting.campaign_insights"],
            "granularity": "aggregate",
            "min_group_size": 50,
            "retention_days": 0,
            "legal_basis": "consent",
        },
    ],
}

HOW = PartnerMatch(
    agreement=AGREEMENT_ID,
    platform_clause="chirp-match",
    partner_clause="reelix-viewers",
    partner_categories=frozenset({EMAIL, WATCHED}),
)


def email(i: int) -> str:
    return f"person{i}@example.org"


@dataclass
class World:
    """The records loaded, kept so tests compute who may take part from them directly."""

    n: int
    consents: list[Consent] = field(default_factory=list)
    opt_outs: list[OptOut] = field(default_factory=list)
    withdrawn: set[str] = field(default_factory=set)

    def chirp_records(self) -> list[tuple[str, str]]:
        return [(f"c{i}", email(i)) for i in range(self.n)]

    def watches(self) -> list[tuple[str, str, str]]:
        return [
            (f"m{i}", f"title-{i % 5}", "drama" if i % 2 == 0 else "comedy") for i in range(self.n)
        ]

    def reelix_records(self, members: Iterable[str]) -> list[tuple[str, str]]:
        chosen = set(members)
        return [(f"m{i}", email(i)) for i in range(self.n) if f"m{i}" in chosen]

    def may_take_part(self, controller: str, person: str) -> bool:
        """From the records: a consent for the other party covering ads, not withdrawn, and no
        opt-out of sale and sharing."""
        consented = any(
            c.controller == controller
            and c.person == person
            and ADS in c.purposes
            and c.id not in self.withdrawn
            for c in self.consents
        )
        opted_out = any(o.controller == controller and o.person == person for o in self.opt_outs)
        return consented and not opted_out

    def expected(self, viewers: Iterable[str]) -> set[str]:
        """The Chirp people an audience of these Reelix viewers must hold."""
        out = set()
        for member in viewers:
            i = int(member[1:])
            if self.may_take_part("reelix", member) and self.may_take_part("chirp", f"c{i}"):
                out.add(f"c{i}")
        return out


def _consent(person: str, controller: str, recipient: str, categories: set[str]) -> Consent:
    return Consent(
        id=f"k-{person}",
        person=person,
        controller=controller,
        recipient=recipient,
        purposes=frozenset({ADS}),
        categories=frozenset(categories),
        jurisdiction=HOME,
        given_at=NOW - timedelta(days=30),
        method=Method.IN_APP_DIALOG,
        notice="notice-v1",
        distinct_and_separate=True,
        withdrawal_method=Method.SETTINGS_PAGE,
        expires_at=NOW + timedelta(days=365),
        operations=frozenset({Operation.READ}),
    )


def build(
    accord: Accord,
    n: int,
    *,
    never_consented: Iterable[int] | None = None,
    chirp_opted_out: Iterable[int] | None = None,
    reelix_opted_out: Iterable[int] | None = None,
) -> World:
    """Register and activate the agreement; load both parties' people, consents, opt-outs; open
    Reelix's advertiser account at Chirp. Who never consented at Reelix and who opted out on
    each side follow the module's pattern unless given."""
    unconsented = set(
        (i for i in range(n) if i % 7 == 5) if never_consented is None else never_consented
    )
    chirp_opted = set(
        (i for i in range(n) if i % 11 == 3) if chirp_opted_out is None else chirp_opted_out
    )
    reelix_opted = set(
        (i for i in range(n) if i % 13 == 4) if reelix_opted_out is None else reelix_opted_out
    )
    accord.register(yaml_text.dump(AGREEMENT), source="audiences.yaml", by="legal")
    accord.review(AGREEMENT_ID, reviewer="Dana Privacy", findings="no findings", approved=True)
    accord.move(AGREEMENT_ID, ag.Status.ACTIVE, by="dpo")
    world = World(n)
    chirp = [Person(f"c{i}", "chirp", HOME) for i in range(n)]
    reelix = [Person(f"m{i}", "reelix", HOME) for i in range(n)]
    chirp_consents = [_consent(p.id, "chirp", "reelix", {EMAIL}) for p in chirp]
    reelix_consents = [
        _consent(p.id, "reelix", "chirp", {EMAIL, WATCHED})
        for i, p in enumerate(reelix)
        if i not in unconsented
    ]
    chirp_out = [
        OptOut(f"c{i}", "chirp", OptOutKind.SALE_SHARING, SignalSource.GPC, NOW - timedelta(1))
        for i in sorted(chirp_opted)
    ]
    reelix_out = [
        OptOut(f"m{i}", "reelix", OptOutKind.SALE_SHARING, SignalSource.FORM, NOW - timedelta(1))
        for i in sorted(reelix_opted)
    ]
    accord.import_records(chirp, chirp_consents, chirp_out)
    accord.import_records(reelix, reelix_consents, reelix_out)
    world.consents = chirp_consents + reelix_consents
    world.opt_outs = chirp_out + reelix_out
    AdsStore(accord.engine, "chirp").add_advertiser(
        Advertiser("reelix-ads", "Reelix", "chirp", party="reelix")
    )
    return world


DRAMA = Audience("reelix-drama", "reelix-ads", "Reelix drama viewers", provider="reelix")


@contextmanager
def opened(folder: Path, n: int, url: str | None = None) -> Iterator[tuple[Accord, World]]:
    """A built world of ``n`` people in the store at ``url`` (or a SQLite store in ``folder``),
    the ledger's key in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with Accord.open(database_url=url, data_dir=folder) as accord:
        yield accord, build(accord, n)
