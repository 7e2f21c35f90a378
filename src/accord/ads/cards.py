"""Model cards: what a click model was trained on, how well it does, and what it replaced.

A card (after Mitchell et al., "Model Cards for Model Reporting", FAT* 2019, with the lineage a
data partnership needs) records the training set — the clauses and purpose it relied on, the
consent snapshot's instant, how many people and rows, and for each shard the SHA-256 of its sorted
person list (:func:`accord.ads.ranking.person_list_sha256`) — the metrics on held-out people, the
model it replaced and the shards retrained to make it. The card goes to the ledger as a
``model_card`` entry (:class:`accord.ledger.entries.ModelCardEntry`): it names nobody, yet
whoever holds a shard's person list can prove from the card whether a person's rows were in it
(:func:`absent_from`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785

from accord.ads.ranking import ClickRanker
from accord.ads.training import person_list_sha256
from accord.consent import utc
from accord.errors import InvalidInput
from accord.ledger.entries import ModelCardEntry
from accord.ledger.log import Ledger, Receipt
from accord.taxonomy import MEDIA_CONSUMPTION


@dataclass(frozen=True)
class PersonList:
    """One list of people a model was fitted on: how many, their rows, and its fingerprint."""

    name: str
    people: int
    rows: int
    sha256: str


@dataclass(frozen=True)
class ModelCard:
    """What a trained model was trained on and how well it does (see the module docstring)."""

    model: str
    platform: str
    trained_at: datetime
    snapshot_at: datetime
    purpose: str
    clauses: tuple[str, ...]
    features: tuple[str, ...]
    people: int
    partner_people: int
    rows: int
    lists: tuple[PersonList, ...]
    metrics: Mapping[str, str]
    replaces: str | None
    retrained: tuple[int, ...]
    shards: int

    def document(self) -> dict[str, Any]:
        """The card as a JSON object (numbers of rows and people as integers, metrics as text)."""
        return {
            "model": self.model,
            "platform": self.platform,
            "trained_at": self.trained_at.isoformat(),
            "snapshot_at": self.snapshot_at.isoformat(),
            "purpose": self.purpose,
            "clauses": list(self.clauses),
            "features": list(self.features),
            "people": self.people,
            "partner_people": self.partner_people,
            "rows": self.rows,
            "shards": self.shards,
            "lists": [
                {"name": x.name, "people": x.people, "rows": x.rows, "sha256": x.sha256}
                for x in self.lists
            ],
            "metrics": dict(self.metrics),
            "replaces": self.replaces,
            "retrained": list(self.retrained),
        }

    def canonical(self) -> str:
        """The card as canonical JSON (RFC 8785): the text the ledger holds."""
        text: str = rfc8785.dumps(self.document()).decode("utf-8")
        return text

    def list_named(self, name: str) -> PersonList:
        """The person list called ``name`` (``shard-3``, ``shard-3-partner``, ``calibration``,
        ``calibration-partner``)."""
        for x in self.lists:
            if x.name == name:
                return x
        raise InvalidInput(f"model {self.model} has no person list {name!r}")


def card_of(
    ranker: ClickRanker,
    *,
    platform: str,
    trained_at: datetime,
    replaces: ModelCard | str | None = None,
) -> ModelCard:
    """The card of ``ranker`` (``replaces``: the card, or the id, of the model it replaces); its
    id is a hash of what it was trained on and when."""
    if ranker.metrics is None:
        raise InvalidInput("a model is measured before its card is written")
    named = ranker.shard_lists()
    rows = {
        "calibration": ranker.calibration_rows,
        "calibration-partner": ranker.calibration_partner_rows,
    }
    for k, state in enumerate(ranker.shards):
        rows[f"shard-{k}"] = state.rows
        rows[f"shard-{k}-partner"] = state.partner_rows
    lists = tuple(
        PersonList(name, len(people), rows[name], person_list_sha256(people))
        for name, people in named.items()
    )
    everyone = {
        p for name, people in named.items() if not name.endswith("-partner") for p in people
    }
    partner = {p for name, people in named.items() if name.endswith("-partner") for p in people}
    snapshot = ranker.snapshot
    fingerprint = hashlib.sha256(
        "\n".join(
            [utc(trained_at).isoformat(), snapshot.at.isoformat(), *(x.sha256 for x in lists)]
        ).encode()
    ).hexdigest()
    return ModelCard(
        model=f"clicks-{fingerprint[:16]}",
        platform=platform,
        trained_at=utc(trained_at),
        snapshot_at=snapshot.at,
        purpose=snapshot.purpose,
        clauses=snapshot.clauses,
        features=ranker.columns,
        people=len(everyone),
        partner_people=len(partner),
        rows=sum(s.rows for s in ranker.shards) + ranker.calibration_rows,
        lists=lists,
        metrics=ranker.metrics.as_text(),
        replaces=replaces.model if isinstance(replaces, ModelCard) else replaces,
        retrained=ranker.retrained,
        shards=len(ranker.shards),
    )


def entry_of(card: ModelCard) -> ModelCardEntry:
    """The ledger entry of ``card``."""
    agreement, _, clause = card.clauses[0].partition(":") if card.clauses else (None, "", "")
    uses = " with partner data" if card.partner_people else " without partner data"
    replaced = f", replacing {card.replaces}" if card.replaces else ""
    return ModelCardEntry(
        agreement=agreement,
        clause=clause or None,
        reason=(
            f"{card.platform} trained click model {card.model} on {card.rows:,} impressions of "
            f"{card.people:,} people{uses} ({card.partner_people:,} people's){replaced}"
        ),
        purpose=card.purpose,
        categories=(MEDIA_CONSUMPTION,) if card.partner_people else (),
        people=card.people,
        at=card.trained_at,
        platform=card.platform,
        model=card.model,
        replaces=card.replaces,
        card=card.canonical(),
    )


def record_card(ledger: Ledger, card: ModelCard) -> Receipt:
    """Append ``card`` to the ledger; its receipt once it is durable."""
    (receipt,) = ledger.append([entry_of(card)])
    return receipt


def absent_from(card: ModelCard, person: str, lists: Mapping[str, Sequence[str]]) -> bool:
    """Whether ``person`` is in none of the card's person lists named in ``lists``, each checked
    first against the card's fingerprint of it: an :class:`InvalidInput` when a list is not the
    one the card was trained on (so a doctored list cannot prove an absence)."""
    for name, people in lists.items():
        expected = card.list_named(name).sha256
        if person_list_sha256(people) != expected:
            raise InvalidInput(f"the list {name!r} is not the one model {card.model} records")
    return all(person not in set(people) for people in lists.values())


__all__ = ["ModelCard", "PersonList", "absent_from", "card_of", "entry_of", "record_card"]
