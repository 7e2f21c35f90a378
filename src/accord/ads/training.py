"""What a click model may be trained on: the consent snapshot, the people, the matrix.

A person's partner features are joined only where the consent snapshot of the training
(:func:`consent_snapshot`) says their consent to Chirp covers :data:`RANKING_PURPOSE` for the
partner's category and no sale/sharing opt-out is in force (:mod:`accord.law.optout`); everyone
else's are *missing* (NaN, which LightGBM routes as missing, never a zero that means "streams an
average amount"). An erased person's rows are not in the matrix at all. Person lists are
fingerprinted (:func:`person_list_sha256`) for the model cards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from accord.ads.clicks import ClickLog
from accord.consent import Consent, OptOut, OptOutKind, utc
from accord.errors import InvalidInput
from accord.taxonomy import MEDIA_CONSUMPTION

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bits = npt.NDArray[np.uint64]
Bools = npt.NDArray[np.bool_]

RANKING_PURPOSE = "marketing.advertising.profiling"
"""The purpose a person's consent must cover for a partner's data about them to rank their ads:
fideslang's profiling for advertising (a consent to ``marketing.advertising`` covers it)."""
PARTNER_CATEGORY = MEDIA_CONSUMPTION
"""What the partner's features are: what the person watches."""
CHIRP_FEATURES = ("age_band", "campaign", "slot", "interest_match", "past_ctr")
PARTNER_FEATURES = ("watch_affinity",)
CATEGORICAL = ("age_band", "campaign")


def stable_hash(person: str, salt: str) -> int:
    """A person's place in a split, the same on every machine and run (not Python's ``hash``)."""
    digest = hashlib.sha256(f"{salt}\x00{person}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def person_list_sha256(people: Iterable[str]) -> str:
    """SHA-256 (hex) of the sorted distinct ids, each followed by a newline: a list's fingerprint
    that a card records and anyone holding the list can check."""
    text = "".join(f"{p}\n" for p in sorted(set(people)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- who may be in the training set, and with what -----------------------------------------


@dataclass(frozen=True)
class ConsentSnapshot:
    """Who the next training may use, and how, as of ``at``: the people whose partner features
    may be joined; the erased, whose rows must not be used at all."""

    at: datetime
    joined: frozenset[str]
    erased: frozenset[str]
    purpose: str = RANKING_PURPOSE
    clauses: tuple[str, ...] = ()


def consent_snapshot(
    people: Iterable[str],
    consents: Iterable[Consent],
    opt_outs: Iterable[OptOut] = (),
    erased: Iterable[str] = (),
    *,
    at: datetime,
    recipient: str,
    purpose: str = RANKING_PURPOSE,
    category: str = PARTNER_CATEGORY,
    clauses: Sequence[str] = (),
) -> ConsentSnapshot:
    """The snapshot at ``at``: a person's partner features are joined when a consent of theirs
    in force at ``at`` lets ``recipient`` use ``category`` for ``purpose`` and no sale/sharing
    opt-out of theirs is in force then (such an opt-out bars every marketing purpose,
    :func:`accord.law.optout.is_barred_by_opt_out`); the erased are never joined."""
    at = utc(at)
    gone = frozenset(erased)
    covered = {
        c.person
        for c in consents
        if c.in_force_at(at) and c.covers(recipient=recipient, purpose=purpose, category=category)
    }
    opted = {o.person for o in opt_outs if o.kind is OptOutKind.SALE_SHARING and o.in_force_at(at)}
    joined = frozenset(p for p in people if p in covered and p not in opted and p not in gone)
    return ConsentSnapshot(at, joined, gone, purpose, tuple(clauses))


@dataclass(frozen=True)
class People:
    """The people of a log (row ``n`` is the log's person ``n``): Chirp's own signals of them, and
    what the partner holds on them (one column per :data:`PARTNER_FEATURES`)."""

    ids: tuple[str, ...]
    age_band: Ints
    interests: Bits
    past_ctr: Floats
    """Each person's own smoothed click rate in earlier impressions (:func:`past_ctr`)."""
    partner: Floats

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(set(self.ids)) != n:
            raise InvalidInput("people's ids must be distinct")
        sizes = {len(self.age_band), len(self.interests), len(self.past_ctr), len(self.partner)}
        if sizes != {n}:
            raise InvalidInput("every person needs an age band, interests and partner features")


PAST_PRIOR = 20.0
"""Impressions' worth of the average click rate a person's own rate is shrunk towards."""


def past_ctr(history: ClickLog, people: int) -> Floats:
    """Each person's click rate in an earlier log, shrunk towards the log's rate by
    :data:`PAST_PRIOR` impressions (a person seen little is near average). It comes from
    impressions before the ones trained on, so it never holds the label it predicts."""
    seen = np.bincount(history.person, minlength=people)
    clicks = np.bincount(history.person, weights=history.clicked, minlength=people)
    mean = float(history.clicked.mean()) if len(history) else 0.0
    out: Floats = (clicks + PAST_PRIOR * mean) / (seen + PAST_PRIOR)
    return out


@dataclass(frozen=True)
class Matrix:
    """A training matrix: features (columns :attr:`columns`), labels, the person of each row
    (an index into ``people``), and the true probability of each (NaN where unknown)."""

    x: Floats
    y: Bools
    row_id: Ints
    """Each row's position in the log it was built from (rows keep it when others are left out)."""
    row_person: Ints
    p_true: Floats
    people: tuple[str, ...]
    joined: Bools
    """Per person: whether their partner features are in the matrix."""
    columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)


def training_matrix(
    log: ClickLog,
    people: People,
    topics: Bits,
    snapshot: ConsentSnapshot,
    *,
    partner: bool = True,
) -> Matrix:
    """The matrix a model of ``snapshot`` trains on: the erased's rows left out; partner
    features (with ``partner``) only for the people the snapshot joins, missing for the rest."""
    ids = np.asarray(people.ids, dtype=object)
    erased = np.isin(ids, list(snapshot.erased)) if snapshot.erased else np.zeros(len(ids), bool)
    joined = np.isin(ids, list(snapshot.joined)) & ~erased
    keep = ~erased[log.person]
    person = log.person[keep]
    campaign = log.campaign[keep]
    match = (people.interests[person] & topics[campaign]) != 0
    own = np.column_stack(
        [
            people.age_band[person],
            campaign,
            log.slot[keep],
            match.astype(np.int64),
            people.past_ctr[person],
        ]
    ).astype(np.float64)
    columns: tuple[str, ...] = CHIRP_FEATURES
    if partner:
        theirs = np.where(joined[person][:, None], people.partner[person], np.nan)
        own = np.hstack([own, theirs])
        columns = CHIRP_FEATURES + PARTNER_FEATURES
    return Matrix(
        own,
        log.clicked[keep],
        np.flatnonzero(keep),
        person,
        log.p_click[keep],
        people.ids,
        joined,
        columns,
    )


def partner_view(affinity: Floats, *, seed: int, noise: float = 0.3) -> Floats:
    """What the partner holds about each person in a simulated world: a noisy view of their
    hidden streaming affinity (one column per :data:`PARTNER_FEATURES`)."""
    rng = np.random.default_rng([seed, 21])
    out: Floats = (affinity + rng.normal(0.0, noise, len(affinity)))[:, None]
    return out


__all__ = [
    "CATEGORICAL",
    "CHIRP_FEATURES",
    "PARTNER_CATEGORY",
    "PARTNER_FEATURES",
    "RANKING_PURPOSE",
    "ConsentSnapshot",
    "Matrix",
    "People",
    "consent_snapshot",
    "partner_view",
    "past_ctr",
    "person_list_sha256",
    "stable_hash",
    "training_matrix",
]
