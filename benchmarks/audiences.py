"""Audiences from partner data: what consent-awareness costs, and what a lookalike finds.

In one run, on the same people:

1. **A custom audience** (:func:`accord.ads.audiences.build_partner_audience`): both sides'
   policy decisions, per-person filters (consent, VPPA, opt-outs) in one query each, ledger
   entries, the private match, the audience's ledger entry and its members written to the store;
   side by side with **the bare match** (:func:`accord.pets.psi.intersect`) of every address on
   both sides, no decision, no filter, no ledger, on one core as the audience's match runs. The
   ratio is the audience's time over the bare match's, both by the process's CPU time.
2. **A lookalike** (:func:`accord.pets.lookalike.build`) of a seed sharing a hidden trait, on
   eight features two of which lean with it: the recall of held-out seed members in the top 20%
   against a random list's 0.2, and the training and scoring time.

Prints a table and ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from accord import agreements as ag
from accord.ads.audiences import PartnerMatch, build_partner_audience
from accord.ads.model import Advertiser, Audience
from accord.ads.store import AdsStore
from accord.consent import Consent, Method, Operation, OptOut, OptOutKind, Person, SignalSource
from accord.pets import lookalike
from accord.pets.psi import curve, intersect
from accord.pets.psi.choices import Kind
from accord.pets.psi.ids import encode, normalise
from accord.service import Accord

console = Console(width=None if Console().is_terminal else 160)
NOW = datetime.now(UTC)
EMAIL = "user.contact.email"
WATCHED = "user.behavior.media_consumption"
ADS = "marketing.advertising.third_party.targeted"
AGREEMENT = f"""
id: bench-audiences
title: Audiences benchmark
provider: chirp
recipient: reelix
valid_from: 2026-01-01
valid_until: 2099-01-01
clauses:
  - id: chirp-match
    direction: provider_to_recipient
    operations: [read]
    categories: [{EMAIL}]
    purposes: [{ADS}]
    granularity: match_only
    retention_days: 0
    legal_basis: consent
  - id: reelix-viewers
    direction: recipient_to_provider
    operations: [read]
    categories: [{EMAIL}, {WATCHED}]
    purposes: [{ADS}]
    granularity: match_only
    retention_days: 0
    legal_basis: consent
"""
HOW = PartnerMatch(
    agreement="bench-audiences",
    platform_clause="chirp-match",
    partner_clause="reelix-viewers",
    partner_categories=frozenset({EMAIL, WATCHED}),
)


def cpu() -> float:
    """This process's CPU seconds."""
    return time.process_time()


def build_store(accord: Accord, n: int) -> None:
    """``n`` people at each party, most consenting, a few opted out."""
    accord.register(AGREEMENT, source="bench.yaml", by="bench")
    accord.review("bench-audiences", reviewer="bench", findings="none", approved=True)
    accord.move("bench-audiences", ag.Status.ACTIVE, by="bench")
    for party, other, prefix, categories in (
        ("chirp", "reelix", "c", {EMAIL}),
        ("reelix", "chirp", "m", {EMAIL, WATCHED}),
    ):
        people = [Person(f"{prefix}{i}", party, "US-CA") for i in range(n)]
        consents = [
            Consent(
                id=f"k-{p.id}",
                person=p.id,
                controller=party,
                recipient=other,
                purposes=frozenset({ADS}),
                categories=frozenset(categories),
                jurisdiction="US-CA",
                given_at=NOW - timedelta(days=30),
                method=Method.IN_APP_DIALOG,
                notice="notice-v1",
                distinct_and_separate=True,
                withdrawal_method=Method.SETTINGS_PAGE,
                expires_at=NOW + timedelta(days=365),
                operations=frozenset({Operation.READ}),
            )
            for i, p in enumerate(people)
            if i % 5
        ]
        opted = [
            OptOut(f"{prefix}{i}", party, OptOutKind.SALE_SHARING, SignalSource.GPC, NOW)
            for i in range(0, n, 17)
        ]
        accord.import_records(people, consents, opted)
    AdsStore(accord.engine, "chirp").add_advertiser(
        Advertiser("reelix-ads", "Reelix", "chirp", party="reelix")
    )


def audience_run(n: int) -> dict[str, float]:
    """The consent-aware audience and the bare match, side by side."""
    chirp = [(f"c{i}", f"person{i}@example.org") for i in range(n)]
    viewers = [(f"m{i}", f"person{i}@example.org") for i in range(0, n, 2)]
    with tempfile.TemporaryDirectory() as folder, Accord.open(data_dir=Path(folder)) as accord:
        build_store(accord, n)
        store = AdsStore(accord.engine, "chirp")
        audience = Audience("bench", "reelix-ads", "Bench", provider="reelix")
        started = cpu()
        built = build_partner_audience(
            accord,
            store,
            audience,
            HOW,
            platform_records=chirp,
            partner_records=viewers,
            built_by="bench",
            min_size=1,
        )
        audience_s = cpu() - started
    ours = [encode(Kind.EMAIL, normalise(Kind.EMAIL, e)) for _p, e in chirp]
    theirs = [encode(Kind.EMAIL, normalise(Kind.EMAIL, e)) for _p, e in viewers]
    with curve.Engine(1) as engine:
        started = cpu()
        bare = intersect(ours, theirs, engine=engine)
        bare_s = cpu() - started
    return {
        "audience_s": audience_s,
        "bare_s": bare_s,
        "members": built.members,
        "bare_matched": bare.size,
    }


def lookalike_run(n: int, seed_size: int) -> dict[str, float]:
    """A lookalike of a seed with a hidden trait: recall and time."""
    rng = np.random.default_rng(3)
    trait = rng.random(n) < 0.2
    features = rng.normal(size=(n, 8))
    features[:, 0] += 1.0 * trait
    features[:, 1] -= 0.7 * trait
    people = [f"p{i}" for i in range(n)]
    seed = {people[i] for i in np.flatnonzero(trait)[:seed_size]}
    started = cpu()
    found = lookalike.build(people, features, seed, size=max(1, n // 20))
    return {
        "lookalike_s": cpu() - started,
        "recall": found.recall,
        "seed": found.seed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small run (what the tests run).")
    args = parser.parse_args()
    n = 1_000 if args.quick else 20_000
    people = 5_000 if args.quick else 200_000
    audience = audience_run(n)
    found = lookalike_run(people, 100 if args.quick else 5_000)
    table = Table(title=f"Audiences: {n:,} people at each party; lookalike among {people:,}")
    for column in ("what", "CPU s", "vs baseline"):
        table.add_column(column)
    ratio = audience["audience_s"] / audience["bare_s"]
    table.add_row("consent-aware audience", f"{audience['audience_s']:.3f}", f"{ratio:.2f}×")
    table.add_row("bare match of every address", f"{audience['bare_s']:.3f}", "1.00×")
    recall_ratio = found["recall"] / lookalike.TOP
    table.add_row(
        f"lookalike recall in the top 20% (seed {found['seed']:,})",
        f"{found['lookalike_s']:.3f}",
        f"{recall_ratio:.2f}× random",
    )
    console.print(table)
    print(
        json.dumps(
            {
                "benchmark": "audiences",
                "people": n,
                "members": audience["members"],
                "bare_matched": audience["bare_matched"],
                "audience_vs_bare_psi_ratio": round(ratio, 3),
                "lookalike_people": people,
                "lookalike_recall": round(found["recall"], 3),
                "lookalike_recall_vs_random_ratio": round(recall_ratio, 3),
                "lookalike_s": round(found["lookalike_s"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
