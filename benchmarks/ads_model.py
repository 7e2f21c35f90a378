"""The click model against the truth, against Chirp's own features alone, against a linear model,
and the cost of forgetting a person against a full retrain.

A seeded world (:func:`accord.ads.clicks.random_model`) knows every impression's true click
probability, so the Bayes-optimal AUC — the AUC of those probabilities — is computable; the model
(LightGBM, calibrated by isotonic regression on held-out people) is reported as a fraction of it
(goal ≥ 0.97). The same model without the partner's features gives the AUC the partner data
adds. Training time is set beside scikit-learn's ``SGDClassifier(loss="log_loss")`` on the same
features (age band and campaign one-hot, the rest scaled), both on one core, in CPU seconds. The
sharded model (SISA, Bourtoule et al., IEEE S&P 2021) then forgets one person who withdraws
their consent: only their shard is retrained and the calibration refitted; the CPU time of that
is set against a full retrain of the single model (goal ≤ 1/5), and the sharded model's AUC
against the single model's (goal within 0.002). Last, what the partner's data bought: a second
season of a smaller simulated world ranked with and without partner features, on the same traffic
(:func:`accord.ads.value.partner_value`): revenue, clicks and AUC.

Prints a table and ends with one line of JSON. ``--quick`` runs it small
(``tests/test_benchmarks.py`` does).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from accord.ads.clicks import random_model, sample_log
from accord.ads.ranking import (
    ROLE_TEST,
    ROLE_TRAIN,
    ClickRanker,
    Settings,
    auc,
    roles,
    smoothed_ctr_auc,
)
from accord.ads.simulate import Season, random_world
from accord.ads.training import (
    CATEGORICAL,
    ConsentSnapshot,
    Matrix,
    People,
    partner_view,
    past_ctr,
    training_matrix,
)
from accord.ads.value import PartnerValue, partner_value

AT = datetime(2026, 6, 1, tzinfo=UTC)
console = Console(stderr=True)


def sgd_baseline(matrix: Matrix) -> tuple[float, float]:
    """CPU seconds to fit scikit-learn's logistic SGD on the training people's rows (features
    encoded for a linear model), and its AUC on the test people."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    role = roles(matrix.people)[matrix.row_person]
    train, test = role == ROLE_TRAIN, role == ROLE_TEST
    categorical = [matrix.columns.index(c) for c in CATEGORICAL]
    numeric = [n for n in range(len(matrix.columns)) if n not in categorical]
    model = make_pipeline(
        ColumnTransformer(
            [
                ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
                ("numbers", StandardScaler(), numeric),
            ]
        ),
        SGDClassifier(loss="log_loss", random_state=7),
    )
    started = time.process_time()
    model.fit(matrix.x[train], matrix.y[train])
    seconds = time.process_time() - started
    return seconds, auc(matrix.y[test], model.predict_proba(matrix.x[test])[:, 1])


@dataclass
class Run:
    """What one run measured."""

    impressions: int
    people: int
    shards: int
    single: ClickRanker
    alone: ClickRanker
    sharded: ClickRanker
    forgotten: ClickRanker
    sgd_seconds: float
    sgd_auc: float
    ctr_auc: float


def models(impressions: int, n: int, campaigns: int, shards: int, *, quick: bool) -> Run:
    """Train every model of the comparison on one seeded world, and forget one person."""
    settings = Settings(shards=1, rounds=60, min_leaf=50) if quick else Settings(shards=1)
    with Progress(console=console, transient=True) as progress:
        step = progress.add_task("the world and its logs", total=6)
        model = random_model(n, campaigns, seed=1)
        log = sample_log(model, impressions, seed=1)
        history = sample_log(model, impressions, seed=2)
        ids = tuple(f"c{i:07d}" for i in range(n))
        people = People(
            ids,
            model.person_age,
            model.person_interests,
            past_ctr(history, n),
            partner_view(model.affinity, seed=1),
        )
        snapshot = ConsentSnapshot(AT, frozenset(ids), frozenset(), clauses=("chirp-reelix:rank",))
        matrix = training_matrix(log, people, model.topics, snapshot)
        own = training_matrix(log, people, model.topics, snapshot, partner=False)
        progress.update(step, advance=1, description="LightGBM, every feature")
        single = ClickRanker.fit(matrix, snapshot, settings)
        progress.update(step, advance=1, description="LightGBM, Chirp's features only")
        alone = ClickRanker.fit(own, snapshot, settings)
        progress.update(step, advance=1, description="SGDClassifier(loss='log_loss')")
        sgd_seconds, sgd_auc = sgd_baseline(matrix)
        progress.update(step, advance=1, description=f"SISA, {shards} shards")
        sharded = ClickRanker.fit(matrix, snapshot, replace(settings, shards=shards))
        progress.update(step, advance=1, description="a withdrawal, forgotten")
        role = roles(ids)
        person = next(p for i, p in enumerate(ids) if role[i] == ROLE_TRAIN)
        withdrawn = ConsentSnapshot(
            AT + timedelta(days=1), frozenset(ids) - {person}, frozenset(), snapshot.purpose
        )
        after = training_matrix(log, people, model.topics, withdrawn)
        forgotten = sharded.forget(after, [person], withdrawn)
        progress.update(step, advance=1)
    return Run(
        impressions, n, shards, single, alone, sharded, forgotten, sgd_seconds, sgd_auc,
        smoothed_ctr_auc(matrix),
    )  # fmt: skip


def value(people: int, days: int) -> PartnerValue:
    """Two seasons of a seeded world: the second ranked with and without partner features."""
    with Progress(console=console, transient=True) as progress:
        progress.add_task("two seasons, ranked with and without partner data", total=None)
        world = random_world(people, 8, seed=5, start=AT - timedelta(days=1))
        ids = frozenset(p.person for p in world.people)
        return partner_value(
            world,
            Season(AT.date(), days=days, seed=1),
            Season(AT.date() + timedelta(days=days), days=max(days // 3, 1), seed=2),
            partner_view(world.model.affinity, seed=5),
            ConsentSnapshot(AT, ids, frozenset()),
            settings=Settings(shards=2, rounds=60, min_leaf=50),
        )


def table(run: Run) -> None:
    """Print the models side by side."""
    m, a, s, f = (r.metrics for r in (run.single, run.alone, run.sharded, run.forgotten))
    assert m is not None  # noqa: S101
    assert a is not None  # noqa: S101
    assert s is not None  # noqa: S101
    assert f is not None  # noqa: S101
    out = Table(title=f"{run.impressions:,} impressions of {run.people:,} people, one core")
    for column in ("model", "AUC", "of Bayes-optimal", "ECE", "CPU seconds"):
        out.add_column(column, justify="left" if column == "model" else "right")
    out.add_row("true probabilities", f"{m.bayes_auc:.4f}", "1.000", "", "")
    for name, ranker, got in (
        ("LightGBM, every feature", run.single, m),
        ("LightGBM, Chirp's own only", run.alone, a),
        (f"SISA, {run.shards} shards", run.sharded, s),
        ("SISA, after forgetting one", run.forgotten, f),
    ):
        out.add_row(name, f"{got.auc:.4f}", f"{got.bayes_fraction:.3f}", f"{got.ece:.4f}",
                    f"{ranker.seconds:.1f}")  # fmt: skip
    out.add_row("SGDClassifier(log_loss)", f"{run.sgd_auc:.4f}",
                f"{run.sgd_auc / m.bayes_auc:.3f}", "", f"{run.sgd_seconds:.1f}")  # fmt: skip
    out.add_row("smoothed CTR per campaign", f"{run.ctr_auc:.4f}",
                f"{run.ctr_auc / m.bayes_auc:.3f}", "", "")  # fmt: skip
    Console().print(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, to check it runs")
    parser.add_argument("--impressions", type=int, help="impressions (default 5,000,000)")
    parser.add_argument("--people", type=int, help="people (default 20,000)")
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--shards", type=int, default=10)
    args = parser.parse_args()
    # Loaded before any clock starts: the first fit must not pay for the imports.
    import lightgbm  # noqa: F401
    import sklearn.isotonic
    import sklearn.linear_model
    import sklearn.metrics  # noqa: F401

    impressions = args.impressions or (50_000 if args.quick else 5_000_000)
    n = args.people or (2_000 if args.quick else 20_000)
    run = models(impressions, n, args.campaigns, args.shards, quick=args.quick)
    worth = value(400 if args.quick else 1_000, 6 if args.quick else 12)
    table(run)
    m, s, f = run.single.metrics, run.sharded.metrics, run.forgotten.metrics
    assert m is not None  # noqa: S101
    assert s is not None  # noqa: S101
    assert f is not None  # noqa: S101
    alone = run.alone.metrics
    assert alone is not None  # noqa: S101
    forget_ratio = run.forgotten.seconds / run.single.seconds
    with_, without = worth.with_partner, worth.chirp_only
    Console().print(
        f"goals: AUC ≥ 0.97 of Bayes-optimal ({m.bayes_fraction:.3f}); forgetting ≤ 0.2 of a "
        f"full retrain ({forget_ratio:.3f}, shard {run.forgotten.retrained}); SISA within "
        f"0.002 AUC of one model ({s.auc - m.auc:+.4f})\n"
        f"a second season ranked with partner features: revenue {with_.result.spend / 1e6:,.0f} "
        f"vs {without.result.spend / 1e6:,.0f} without ({worth.revenue_lift:+.1%}), clicks "
        f"{with_.result.clicks:,} vs {without.result.clicks:,}, AUC {with_.auc:.4f} vs "
        f"{without.auc:.4f}, partner data of {worth.partner_people:,} people"
    )
    print(
        json.dumps(
            {
                "benchmark": "ads_model",
                "impressions": impressions,
                "people": n,
                "shards": args.shards,
                "bayes_auc": round(m.bayes_auc, 4),
                "auc": round(m.auc, 4),
                "auc_of_bayes_ratio": round(m.bayes_fraction, 4),
                "ece": round(m.ece, 5),
                "chirp_only_auc": round(alone.auc, 4),
                "partner_auc_lift": round(m.auc - alone.auc, 4),
                "smoothed_ctr_auc": round(run.ctr_auc, 4),
                "lightgbm_seconds": round(run.single.seconds, 2),
                "sgd_seconds": round(run.sgd_seconds, 2),
                "sgd_auc": round(run.sgd_auc, 4),
                "lightgbm_vs_sgd_time_ratio": round(run.single.seconds / run.sgd_seconds, 3),
                "full_retrain_seconds": round(run.single.seconds, 2),
                "forget_seconds": round(run.forgotten.seconds, 3),
                "forget_vs_full_retrain_ratio": round(forget_ratio, 4),
                "retrained_shards": list(run.forgotten.retrained),
                "sisa_auc": round(s.auc, 4),
                "sisa_auc_gap": round(s.auc - m.auc, 4),
                "sisa_after_forgetting_auc": round(f.auc, 4),
                "season_revenue_with_partner_micros": with_.result.spend,
                "season_revenue_chirp_only_micros": without.result.spend,
                "season_revenue_with_vs_without_ratio": round(
                    with_.result.spend / max(without.result.spend, 1), 4
                ),
                "season_clicks_with_partner": with_.result.clicks,
                "season_clicks_chirp_only": without.result.clicks,
                "season_auc_with_partner": round(with_.auc, 4),
                "season_auc_chirp_only": round(without.auc, 4),
                "partner_people": worth.partner_people,
            }
        )
    )


if __name__ == "__main__":
    main()
