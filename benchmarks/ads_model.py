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
against the single model's (goal within 0.002).

Prints a table and ends with one line of JSON. ``--quick`` runs it small
(``tests/test_benchmarks.py`` does).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from accord.ads.clicks import random_model, sample_log
from accord.ads.ranking import (
    CATEGORICAL,
    ROLE_TEST,
    ROLE_TRAIN,
    ClickRanker,
    ConsentSnapshot,
    Matrix,
    People,
    Settings,
    auc,
    partner_view,
    past_ctr,
    roles,
    smoothed_ctr_auc,
    training_matrix,
)

AT = datetime(2026, 6, 1, tzinfo=UTC)
console = Console(stderr=True)


def sgd_baseline(matrix: Matrix) -> tuple[float, float]:
    """CPU seconds to fit scikit-learn's logistic SGD on the training people's rows (features
    encoded for a linear model), and its AUC on the test people."""
    from sklearn.compose import ColumnTransformer  # noqa: PLC0415
    from sklearn.linear_model import SGDClassifier  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: PLC0415

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, to check it runs")
    parser.add_argument("--impressions", type=int, help="impressions (default 5,000,000)")
    parser.add_argument("--people", type=int, help="people (default 20,000)")
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--shards", type=int, default=10)
    args = parser.parse_args()
    # Loaded before any clock starts: the first fit must not pay for the imports.
    import lightgbm  # noqa: F401, PLC0415
    import sklearn.isotonic  # noqa: F401, PLC0415
    import sklearn.linear_model  # noqa: F401, PLC0415
    import sklearn.metrics  # noqa: F401, PLC0415

    impressions = args.impressions or (50_000 if args.quick else 5_000_000)
    n = args.people or (2_000 if args.quick else 20_000)
    settings = Settings(shards=1, rounds=60, min_leaf=50) if args.quick else Settings(shards=1)

    with Progress(console=console, transient=True) as progress:
        step = progress.add_task("the world and its logs", total=7)
        model = random_model(n, args.campaigns, seed=1)
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
        progress.update(step, advance=1, description=f"SISA, {args.shards} shards")
        sharded = ClickRanker.fit(matrix, snapshot, replace(settings, shards=args.shards))
        progress.update(step, advance=1, description="a withdrawal, forgotten")
        person = next(p for i, p in enumerate(ids) if sharded._roles[i] == ROLE_TRAIN)
        withdrawn = ConsentSnapshot(
            AT + timedelta(days=1), frozenset(ids) - {person}, frozenset(), snapshot.purpose
        )
        after = training_matrix(log, people, model.topics, withdrawn)
        forgotten = sharded.forget(after, [person], withdrawn)
        progress.update(step, advance=1, description="the smoothed click-through rate")
        ctr_auc = smoothed_ctr_auc(matrix)
        progress.update(step, advance=1)

    m, a, s, f = single.metrics, alone.metrics, sharded.metrics, forgotten.metrics
    assert m is not None and a is not None and s is not None and f is not None  # noqa: S101
    table = Table(title=f"{impressions:,} impressions of {n:,} people, one core")
    for column in ("model", "AUC", "of Bayes-optimal", "ECE", "CPU seconds"):
        table.add_column(column, justify="left" if column == "model" else "right")
    table.add_row("true probabilities", f"{m.bayes_auc:.4f}", "1.000", "", "")
    table.add_row("LightGBM, every feature", f"{m.auc:.4f}", f"{m.bayes_fraction:.3f}",
                  f"{m.ece:.4f}", f"{single.seconds:.1f}")  # fmt: skip
    table.add_row("LightGBM, Chirp's own only", f"{a.auc:.4f}", f"{a.bayes_fraction:.3f}",
                  f"{a.ece:.4f}", f"{alone.seconds:.1f}")  # fmt: skip
    table.add_row("SGDClassifier(log_loss)", f"{sgd_auc:.4f}", f"{sgd_auc / m.bayes_auc:.3f}",
                  "", f"{sgd_seconds:.1f}")  # fmt: skip
    table.add_row(f"SISA, {args.shards} shards", f"{s.auc:.4f}", f"{s.bayes_fraction:.3f}",
                  f"{s.ece:.4f}", f"{sharded.seconds:.1f}")  # fmt: skip
    table.add_row("SISA, after forgetting one", f"{f.auc:.4f}", f"{f.bayes_fraction:.3f}",
                  f"{f.ece:.4f}", f"{forgotten.seconds:.1f}")  # fmt: skip
    table.add_row("smoothed CTR per campaign", f"{ctr_auc:.4f}", f"{ctr_auc / m.bayes_auc:.3f}",
                  "", "")  # fmt: skip
    Console().print(table)
    forget_ratio = forgotten.seconds / single.seconds
    Console().print(
        f"goals: AUC ≥ 0.97 of Bayes-optimal ({m.bayes_fraction:.3f}); forgetting ≤ 0.2 of a "
        f"full retrain ({forget_ratio:.3f}, shard {forgotten.retrained}); SISA within 0.002 AUC "
        f"of one model ({s.auc - m.auc:+.4f})"
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
                "chirp_only_auc": round(a.auc, 4),
                "partner_auc_lift": round(m.auc - a.auc, 4),
                "smoothed_ctr_auc": round(ctr_auc, 4),
                "lightgbm_seconds": round(single.seconds, 2),
                "sgd_seconds": round(sgd_seconds, 2),
                "sgd_auc": round(sgd_auc, 4),
                "lightgbm_vs_sgd_time_ratio": round(single.seconds / sgd_seconds, 3),
                "full_retrain_seconds": round(single.seconds, 2),
                "forget_seconds": round(forgotten.seconds, 2),
                "forget_vs_full_retrain_ratio": round(forget_ratio, 4),
                "retrained_shards": list(forgotten.retrained),
                "sisa_auc": round(s.auc, 4),
                "sisa_auc_gap": round(s.auc - m.auc, 4),
                "sisa_after_forgetting_auc": round(f.auc, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
