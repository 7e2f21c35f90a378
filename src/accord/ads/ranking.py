"""The click model: LightGBM on impression logs, partner features only as consent allows, and
training sharded so that a person can be forgotten by retraining the shards that held them.

**Features.** Chirp's own: the person's age band, whether one of their interests is a topic of
the campaign, the campaign (a category: its appeal is learned), the slot and the person's past
click rate. The partner's: what a streaming service knows of the person (e.g. a watch affinity),
joined only as the consent snapshot allows (:mod:`accord.ads.training`).

**Held out.** People, not rows, are split by a stable hash of their id: a fifth are the test set
(AUC, expected calibration error, the Bayes-optimal AUC of the true probabilities), a twentieth the
calibration set (isotonic regression of the averaged scores, Zadrozny and Elkan, KDD 2002), the
rest train.

**Sharded training** (SISA: Bourtoule et al., "Machine Unlearning", IEEE S&P 2021): the training
people are split into shards by the same stable hash; one LightGBM per shard, their scores
averaged and then calibrated. Forgetting a person (:meth:`ClickRanker.forget`) retrains only the
shard that held their rows (and refits the calibration, a small isotonic fit), so the cost is
about one shard's share of a full retrain.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.ads.model import AGE_BANDS, PersonSignals
from accord.ads.training import (
    CATEGORICAL,
    CHIRP_FEATURES,
    PARTNER_FEATURES,
    ConsentSnapshot,
    Matrix,
    People,
    stable_hash,
)
from accord.errors import InvalidInput

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bits = npt.NDArray[np.uint64]
Bools = npt.NDArray[np.bool_]

TEST_SHARE, CALIBRATION_SHARE = 0.2, 0.05
MAX_CALIBRATION_ROWS = 100_000


# --- metrics ------------------------------------------------------------------------------


def auc(y: Bools, score: Floats) -> float:
    """Area under the ROC curve (scikit-learn's)."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415 - heavy, only when measured

    return float(roc_auc_score(y, score))


def expected_calibration_error(y: Bools, p: Floats, bins: int = 20) -> float:
    """Expected calibration error over ``bins`` bins of equal count (Naeini et al., AAAI 2015):
    the share-weighted gap between mean prediction and click rate in each bin. Equal-count bins,
    because click probabilities crowd near zero where equal-width bins would hold them all."""
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += len(chunk) * abs(float(p[chunk].mean()) - float(y[chunk].mean()))
    return total / max(len(p), 1)


@dataclass(frozen=True)
class Metrics:
    """How a model does on the held-out people."""

    auc: float
    ece: float
    bayes_auc: float
    """The AUC of the true probabilities on the same rows: the best any model could do."""
    rows: int

    @property
    def bayes_fraction(self) -> float:
        """AUC as a fraction of the Bayes-optimal AUC."""
        return self.auc / self.bayes_auc

    def as_text(self) -> dict[str, str]:
        """The metrics as decimal text (a ledger leaf holds no floats)."""
        return {
            "auc": f"{self.auc:.6f}",
            "ece": f"{self.ece:.6f}",
            "bayes_auc": f"{self.bayes_auc:.6f}",
            "bayes_fraction": f"{self.bayes_fraction:.6f}",
            "test_rows": str(self.rows),
        }


# --- the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How the model is trained."""

    shards: int = 1
    rounds: int = 200
    learning_rate: float = 0.08
    leaves: int = 31
    min_leaf: int = 200
    threads: int = 1
    """LightGBM's threads: one is fastest on a machine shared with other work."""
    seed: int = 7


ROLE_TEST, ROLE_CALIBRATE, ROLE_TRAIN = 0, 1, 2


def roles(people: Sequence[str]) -> Ints:
    """Each person's role: held out for test, for calibration, or trained on (stable)."""
    u = np.array([stable_hash(p, "split") % 1000 for p in people]) / 1000.0
    out = np.full(len(people), ROLE_TRAIN, dtype=np.int64)
    out[u < TEST_SHARE + CALIBRATION_SHARE] = ROLE_CALIBRATE
    out[u < TEST_SHARE] = ROLE_TEST
    return out


def shards_of(people: Sequence[str], shards: int) -> Ints:
    """Each person's training shard: a stable hash of their id."""
    return np.array([stable_hash(p, "shard") % shards for p in people], dtype=np.int64)


@dataclass
class ShardState:
    """One shard: its booster and the people whose rows (and partner features) it was fitted on."""

    booster: Any
    people: tuple[str, ...]
    partner_people: tuple[str, ...]
    rows: int
    partner_rows: int
    seconds: float


@dataclass
class ClickRanker:
    """A calibrated click model of one or more shards (SISA), trained on a :class:`Matrix`."""

    settings: Settings
    columns: tuple[str, ...]
    shards: list[ShardState]
    calibrator: Any
    calibration_people: tuple[str, ...]
    calibration_rows: int
    snapshot: ConsentSnapshot
    metrics: Metrics | None = None
    calibration_partner: tuple[str, ...] = ()
    calibration_partner_rows: int = 0
    retrained: tuple[int, ...] = ()
    seconds: float = 0.0
    """The CPU seconds training (or forgetting) took: fitting shards and calibrating, not measuring
    (CPU time, so that other work on the machine does not count)."""
    _roles: Ints = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    _shard: Ints = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    # Each shard's scores of the held-out rows (by role), with the rows' log positions: kept so
    # that forgetting scores the held-out rows again only with the shards it retrains.
    _held: dict[int, tuple[Ints, list[Floats]]] = field(default_factory=dict, repr=False)

    @classmethod
    def fit(
        cls, matrix: Matrix, snapshot: ConsentSnapshot, settings: Settings | None = None
    ) -> ClickRanker:
        """Train every shard on ``matrix`` (built from ``snapshot``), calibrate on the
        calibration people, measure on the test people."""
        s = settings or Settings()
        if s.shards < 1:
            raise InvalidInput(f"a model needs at least one shard, not {s.shards}")
        started = time.process_time()
        role = roles(matrix.people)
        shard = shards_of(matrix.people, s.shards)
        states = [_fit_shard(matrix, role, shard, k, s) for k in range(s.shards)]
        ranker = cls(s, matrix.columns, states, None, (), 0, snapshot)
        ranker._roles, ranker._shard = role, shard
        ranker._calibrate(matrix, None)
        ranker.seconds = time.process_time() - started
        ranker._held_scores(matrix, ROLE_TEST)
        ranker.metrics = ranker._measure(matrix)
        return ranker

    def forget(
        self, matrix: Matrix, people: Iterable[str], snapshot: ConsentSnapshot
    ) -> ClickRanker:
        """A new model without ``people``'s rows or partner features as ``matrix`` (built from
        the new ``snapshot``) has them: only the shards that held them are retrained, the
        others are kept as they are, and the calibration is refitted."""
        started = time.process_time()
        people = list(people)
        position = {p: n for n, p in enumerate(matrix.people)}
        unknown = [p for p in people if p not in position]
        if unknown:
            raise InvalidInput(f"{len(unknown)} of the people to forget are not in the log")
        touched = sorted(
            {
                int(self._shard[position[p]])
                for p in people
                if self._roles[position[p]] == ROLE_TRAIN
            }
        )
        role, shard = roles(matrix.people), shards_of(matrix.people, self.settings.shards)
        states = list(self.shards)
        for k in touched:
            states[k] = _fit_shard(matrix, role, shard, k, self.settings)
        new = ClickRanker(
            self.settings, matrix.columns, states, None, (), 0, snapshot, retrained=tuple(touched)
        )
        new._roles, new._shard, new._held = role, shard, dict(self._held)
        changed = {position[p] for p in people}
        new._calibrate(matrix, changed, touched)
        new.seconds = time.process_time() - started
        new._held_scores(matrix, ROLE_TEST, changed, touched)
        new.metrics = new._measure(matrix)
        return new

    def score(self, x: Floats) -> Floats:
        """The shards' uncalibrated probabilities, averaged."""
        total = np.zeros(len(x))
        for state in self.shards:
            total += state.booster.predict(x, num_threads=self.settings.threads)
        out: Floats = total / len(self.shards)
        return out

    def predict(self, x: Floats) -> Floats:
        """Calibrated click probabilities of feature rows ``x`` (columns :attr:`columns`)."""
        out: Floats = np.clip(self.calibrator.predict(self.score(x)), 1e-6, 1 - 1e-6)
        return out

    def measure(self, matrix: Matrix) -> Metrics:
        """AUC, expected calibration error and Bayes-optimal AUC on the test people's rows."""
        rows = self._roles[matrix.row_person] == ROLE_TEST
        return self._metrics(matrix, rows, self.predict(matrix.x[rows]))

    def _measure(self, matrix: Matrix) -> Metrics:
        """:meth:`measure` from the test rows' scores just kept."""
        rows = self._roles[matrix.row_person] == ROLE_TEST
        score = np.mean(self._held[ROLE_TEST][1], axis=0)
        return self._metrics(matrix, rows, np.clip(self.calibrator.predict(score), 1e-6, 1 - 1e-6))

    @staticmethod
    def _metrics(matrix: Matrix, rows: Bools, p: Floats) -> Metrics:
        y, truth = matrix.y[rows], matrix.p_true[rows]
        if not y.any() or y.all():
            raise InvalidInput("the test people's rows are all clicks or all not: too few rows")
        # The true probabilities are known only in a simulated world.
        bayes = float("nan") if np.isnan(truth).any() else auc(y, truth)
        return Metrics(auc(y, p), expected_calibration_error(y, p), bayes, int(rows.sum()))

    def _held_scores(
        self,
        matrix: Matrix,
        role: int,
        changed: set[int] | None = None,
        retrained: Sequence[int] = (),
    ) -> Floats:
        """The averaged scores of the held-out rows of ``role``: from the scores kept for each
        shard where neither the shard (``retrained``) nor the row (its person ``changed``, or a
        row not kept) did change, scored afresh otherwise."""
        rows = self._held_rows(matrix, role)
        ids = matrix.row_id[rows]
        kept = self._held.get(role)
        threads = self.settings.threads
        if kept is None or changed is None:
            fresh = [s.booster.predict(matrix.x[rows], num_threads=threads) for s in self.shards]
            self._held[role] = (ids, fresh)
            out: Floats = np.mean(fresh, axis=0)
            return out
        old_ids, old_scores = kept
        at = np.minimum(np.searchsorted(old_ids, ids), max(len(old_ids) - 1, 0))
        redo = (
            np.isin(matrix.row_person[rows], list(changed))
            if changed
            else np.zeros(len(rows), bool)
        )
        if len(old_ids):
            redo |= old_ids[at] != ids
        else:
            redo[:] = True
        scores = []
        for k, state in enumerate(self.shards):
            if k in retrained:
                score = state.booster.predict(matrix.x[rows], num_threads=threads)
            else:
                score = old_scores[k][at] if len(old_ids) else np.zeros(len(rows))
                if redo.any():
                    score[redo] = state.booster.predict(matrix.x[rows[redo]], num_threads=threads)
            scores.append(score)
        self._held[role] = (ids, scores)
        mean: Floats = np.mean(scores, axis=0)
        return mean

    def _held_rows(self, matrix: Matrix, role: int) -> Ints:
        """The rows held out for ``role``; for calibration, the calibration people's rows up to
        :data:`MAX_CALIBRATION_ROWS`, whole people in the order of their stable hash (an
        isotonic fit needs no more, and scoring more would make forgetting dearer)."""
        rows = np.flatnonzero(self._roles[matrix.row_person] == role)
        if role != ROLE_CALIBRATE or len(rows) <= MAX_CALIBRATION_ROWS:
            return rows
        who = np.flatnonzero(self._roles == ROLE_CALIBRATE)
        counts = np.bincount(matrix.row_person[rows], minlength=len(matrix.people))[who]
        order = np.argsort([stable_hash(matrix.people[i], "calibration") for i in who.tolist()])
        take = who[order][np.cumsum(counts[order]) <= MAX_CALIBRATION_ROWS]
        out: Ints = rows[np.isin(matrix.row_person[rows], take)]
        return out

    def _calibrate(
        self, matrix: Matrix, changed: set[int] | None, retrained: Sequence[int] = ()
    ) -> None:
        from sklearn.isotonic import IsotonicRegression  # noqa: PLC0415 - heavy

        rows = self._held_rows(matrix, ROLE_CALIBRATE)
        if not len(rows) or not matrix.y[rows].any():
            raise InvalidInput("the calibration people have no click: too few impressions")
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        score = self._held_scores(matrix, ROLE_CALIBRATE, changed, retrained)
        iso.fit(score, matrix.y[rows].astype(np.float64))
        self.calibrator = iso
        people = np.unique(matrix.row_person[rows])
        self.calibration_people = tuple(matrix.people[i] for i in people.tolist())
        self.calibration_partner = tuple(
            matrix.people[i] for i in people[matrix.joined[people]].tolist()
        )
        self.calibration_rows = len(rows)
        self.calibration_partner_rows = int(matrix.joined[matrix.row_person[rows]].sum())

    def shard_lists(self) -> dict[str, tuple[str, ...]]:
        """Every person list the model was fitted on, by name: ``shard-<k>`` (rows),
        ``shard-<k>-partner`` (partner features joined), ``calibration`` and
        ``calibration-partner``."""
        out: dict[str, tuple[str, ...]] = {
            "calibration": self.calibration_people,
            "calibration-partner": self.calibration_partner,
        }
        for k, state in enumerate(self.shards):
            out[f"shard-{k}"] = state.people
            out[f"shard-{k}-partner"] = state.partner_people
        return out


def _fit_shard(matrix: Matrix, role: Ints, shard: Ints, k: int, s: Settings) -> ShardState:
    import lightgbm as lgb  # noqa: PLC0415 - heavy, only when training

    started = time.process_time()
    rows = (role[matrix.row_person] == ROLE_TRAIN) & (shard[matrix.row_person] == k)
    if not matrix.y[rows].any():
        raise InvalidInput(f"shard {k} has no click to learn from: too few impressions")
    categorical = [matrix.columns.index(c) for c in CATEGORICAL]
    data = lgb.Dataset(
        matrix.x[rows],
        matrix.y[rows].astype(np.float64),
        feature_name=list(matrix.columns),
        categorical_feature=categorical,
        free_raw_data=True,
    )
    params = {
        "objective": "binary",
        "learning_rate": s.learning_rate,
        "num_leaves": s.leaves,
        "min_data_in_leaf": s.min_leaf,
        "num_threads": s.threads,
        "seed": s.seed,
        "deterministic": True,
        "verbose": -1,
    }
    booster = lgb.train(params, data, num_boost_round=s.rounds)
    who = np.unique(matrix.row_person[rows])
    people = tuple(matrix.people[i] for i in who.tolist())
    partner = tuple(matrix.people[i] for i in who[matrix.joined[who]].tolist())
    partner_rows = int(matrix.joined[matrix.row_person[rows]].sum())
    return ShardState(
        booster, people, partner, int(rows.sum()), partner_rows, time.process_time() - started
    )


def smoothed_ctr_auc(matrix: Matrix, prior_clicks: int = 1, prior_impressions: int = 100) -> float:
    """The AUC on the test people of each campaign's smoothed click-through rate on the rest
    (what the ad server ranks by before a model is trained)."""
    role = roles(matrix.people)[matrix.row_person]
    campaign = matrix.x[:, matrix.columns.index("campaign")].astype(np.int64)
    train, test = role != ROLE_TEST, role == ROLE_TEST
    size = int(campaign.max()) + 1
    seen = np.bincount(campaign[train], minlength=size)
    clicks = np.bincount(campaign[train], weights=matrix.y[train], minlength=size)
    rate = (clicks + prior_clicks) / (seen + prior_impressions)
    return auc(matrix.y[test], rate[campaign[test]])


def person_features(
    topics: Bits,
    *,
    age_band: int,
    interests: int,
    past: float,
    partner: Sequence[float] | None,
    slot: int = 0,
) -> Floats:
    """Feature rows of one person for every campaign (in ``topics`` order) in ``slot``: what the
    ad server asks the model for each request. ``partner`` is None when not joined."""
    n = len(topics)
    match = (np.uint64(interests) & topics) != 0
    own = np.column_stack(
        [
            np.full(n, age_band),
            np.arange(n),
            np.full(n, slot),
            match.astype(np.int64),
            np.full(n, past),
        ]
    ).astype(np.float64)
    values = [np.nan] * len(PARTNER_FEATURES) if partner is None else list(partner)
    return np.hstack([own, np.tile(np.asarray(values, dtype=np.float64), (n, 1))])


class RankingPredictor:
    """The market's predictor from a trained model: each campaign's calibrated click probability
    for a person (in the first slot; the auction prices the position itself).

    The person's features are read from ``people`` (by id); partner features are used only for
    the people ``joined`` (the consent snapshot of the serving instant) and never for a request
    whose person opted out (recorded, or a Global Privacy Control signal on the request), nor by
    a model trained without them. A person the table does not know is scored with the average
    past rate and no partner features. ``topics`` are the campaigns' topics in index order.
    """

    def __init__(
        self, ranker: ClickRanker, people: People, topics: Bits, joined: frozenset[str]
    ) -> None:
        self.ranker, self.people, self.topics, self.joined = ranker, people, topics, joined
        self.row = {p: n for n, p in enumerate(people.ids)}
        self.partner = all(c in ranker.columns for c in PARTNER_FEATURES)
        self.mean_past = float(np.mean(people.past_ctr)) if len(people.ids) else 0.0

    def __call__(self, person: PersonSignals, _eligible: Bools) -> Floats:
        """Calibrated click probabilities of every campaign for ``person``."""
        n = self.row.get(person.person)
        use = n is not None and person.person in self.joined and not person.opted_out
        x = person_features(
            self.topics,
            age_band=AGE_BANDS.index(person.age_band)
            if n is None
            else int(self.people.age_band[n]),
            interests=0 if n is None else int(self.people.interests[n]),
            past=self.mean_past if n is None else float(self.people.past_ctr[n]),
            partner=list(self.people.partner[n]) if use and n is not None else None,
        )
        if not self.partner:
            x = x[:, : len(CHIRP_FEATURES)]
        return self.ranker.predict(x)


__all__ = [
    "MAX_CALIBRATION_ROWS",
    "ROLE_CALIBRATE",
    "ROLE_TEST",
    "ROLE_TRAIN",
    "ClickRanker",
    "Metrics",
    "RankingPredictor",
    "Settings",
    "auc",
    "expected_calibration_error",
    "person_features",
    "roles",
    "shards_of",
    "smoothed_ctr_auc",
]
