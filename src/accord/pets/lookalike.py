"""Lookalike audiences: people like a partner's seed, found where the seed never leaves.

As AWS Clean Rooms ML builds them (a seed of 25 to 500,000 people, a model trained on the
platform's features, the top-scored people released, quality reported as recall), with two
differences: the seed is only people Accord matched under their consent (see
:mod:`accord.ads.audiences`), and what leaves is only people *outside* the seed, so the audience
never tells the platform who the partner's customers are.

Inside, in :func:`build`:

1. a fifth of the seed is held out at random; the rest are the positives, every platform person
   outside the seed is unlabelled and taken as negative (positive-unlabelled learning, Elkan and
   Noto, *Learning Classifiers from Only Positive and Unlabeled Data*, KDD 2008: the ranking of a
   classifier of labelled against unlabelled is the ranking of positive against negative);
2. scikit-learn's logistic regression, on standardised features with balanced class weights,
   scores every platform person;
3. quality is the recall of the held-out seed members in the top 20% of the scores of everyone
   not used for training (a random list scores 0.2);
4. the ``size`` best-scored people outside the whole seed, held-out members included, are the
   audience, chosen by a clean-room engine (:func:`accord.pets.lookalike_sql.top_on`: DuckDB, or
   Apache Spark when a session is given, the same people on both). The seed, the scores and the
   model stay in the room: :class:`Lookalike` holds none of them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from accord.errors import InvalidInput
from accord.pets.lookalike_sql import Scorer, top_on

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MIN_SEED = 25
"""The smallest seed a lookalike is built from (as AWS Clean Rooms ML)."""
MAX_SEED = 500_000
"""The largest seed (as AWS Clean Rooms ML)."""
HELD_OUT = 0.2
"""The share of the seed held out to measure recall."""
TOP = 0.2
"""Recall is measured in this top share of the scores."""

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Lookalike:
    """What leaves the room: the audience (platform people outside the seed, best first) and how
    good the model was. Neither the seed nor any score is in it."""

    members: tuple[str, ...]
    seed: int
    """How many seed members the model learned from and was tested on, together."""
    held_out: int
    recall: float
    """Recall of the held-out seed members in the top :data:`TOP` of scores."""
    candidates: int
    """Platform people outside the seed that were scored."""


def check_seed_size(size: int) -> None:
    """Refuse a seed outside :data:`MIN_SEED` to :data:`MAX_SEED` people."""
    if not MIN_SEED <= size <= MAX_SEED:
        raise InvalidInput(
            f"a lookalike seed has {MIN_SEED:,} to {MAX_SEED:,} people; this one has {size:,}",
            where="lookalike seed",
        )


def build(
    people: Sequence[str],
    features: Floats,
    seed: Collection[str],
    size: int,
    *,
    random_state: int = 0,
    spark: SparkSession | None = None,
) -> Lookalike:
    """The ``size`` platform people most like ``seed``, none of them in it.

    ``people`` are the platform's people, one per row of ``features``; ``seed`` are platform
    people (the partner's seed, matched into the platform). Seed members the platform has no
    features of are left out of the seed. The audience is chosen by DuckDB, or by Spark when
    ``spark`` is given.
    """
    if size < 1:
        raise InvalidInput(f"a lookalike audience has at least one person, not {size}")
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(people):
        raise InvalidInput(
            f"features are one row per person: {len(people)} people, shape {x.shape}"
        )
    if not np.isfinite(x).all():
        raise InvalidInput("features must be finite numbers (no NaN or infinity)")
    in_seed = np.fromiter((p in seed for p in people), dtype=bool, count=len(people))
    seeded = int(in_seed.sum())
    check_seed_size(seeded)
    if seeded == len(people):
        raise InvalidInput("everyone is in the seed: there is nobody outside it to find")
    rng = np.random.default_rng(random_state)
    seed_rows = np.flatnonzero(in_seed)
    held = rng.choice(seed_rows, size=max(1, round(HELD_OUT * seeded)), replace=False)
    training = np.ones(len(people), dtype=bool)
    training[held] = False
    labels = in_seed[training].astype(np.int64)
    model = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1_000)
    )
    model.fit(x[training], labels)
    scores: Floats = model.decision_function(x)
    # Recall among everyone the model did not learn from: the held-out seed and the rest.
    tested = ~in_seed
    tested[held] = True
    tested_scores = scores[tested]
    cut = np.quantile(tested_scores, 1 - TOP)
    recall = float(np.mean(scores[held] >= cut))
    outside = np.flatnonzero(~in_seed)
    scaler, regression = model[0], model[-1]
    scorer = Scorer(
        means=tuple(float(v) for v in scaler.mean_),
        scales=tuple(float(v) for v in scaler.scale_),
        weights=tuple(float(v) for v in regression.coef_[0]),
        intercept=float(regression.intercept_[0]),
    )
    best = top_on([people[int(i)] for i in outside], x[outside], scorer, size, spark=spark)
    return Lookalike(
        members=tuple(best),
        seed=seeded,
        held_out=len(held),
        recall=recall,
        candidates=len(outside),
    )


__all__ = ["HELD_OUT", "MAX_SEED", "MIN_SEED", "TOP", "Lookalike", "build", "check_seed_size"]
