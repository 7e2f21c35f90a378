"""An opt-out keeps a person out of matching and of decisions for advertising wherever they live.

Four Chirp customers, all of whom consented (distinct and separate) to matching for advertising;
two of them said no to the sale and sharing of their data::

    c1  US-TX  no opt-out                                  → matched
    c2  US-TX  Sec-GPC: 1        (Texas, Tex. Bus. & Com. Code 541.055)  → left out
    c3  DE     opt-out form      (GDPR Art. 21(2)-(3))     → left out
    c4  DE     no opt-out                                  → matched

Reelix's four members have the same addresses, consented and never opted out.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import yaml_text
from accord import agreements as ag
from accord.cli import app as accord_app
from accord.consent import Consent, Method, Operation, OptOut, OptOutKind, Person, SignalSource
from accord.pets.psi.cli import app as psi_app
from accord.service import Accord
from pets.psi_world import ADS, AGREEMENT, AUDIENCE, EMAIL, NOW

pytestmark = pytest.mark.integration

HOMES = {"1": "US-TX", "2": "US-TX", "3": "DE", "4": "DE"}
EMAILS = {n: f"person{n}@example.org" for n in HOMES}


def build(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with Accord.open(data_dir=folder) as accord:
        accord.register(yaml_text.dump(AGREEMENT), source="audience.yaml", by="legal")
        accord.review(AUDIENCE, reviewer="Dana Privacy", findings="none", approved=True)
        accord.move(AUDIENCE, ag.Status.ACTIVE, by="dpo")
        for party, prefix in (("chirp", "c"), ("reelix", "m")):
            other = "reelix" if party == "chirp" else "chirp"
            people = [Person(f"{prefix}{n}", party, home) for n, home in HOMES.items()]
            consents = [
                Consent(
                    id=f"k-{p.id}",
                    person=p.id,
                    controller=party,
                    recipient=other,
                    purposes=frozenset({ADS}),
                    categories=frozenset({EMAIL}),
                    jurisdiction=p.jurisdiction,
                    given_at=NOW - timedelta(days=30),
                    method=Method.IN_APP_DIALOG,
                    notice="notice-v1",
                    distinct_and_separate=True,
                    withdrawal_method=Method.SETTINGS_PAGE,
                    operations=frozenset({Operation.READ}),
                )
                for p in people
            ]
            opt_outs = (
                [
                    OptOut(
                        "c2", party, OptOutKind.SALE_SHARING, SignalSource.GPC, NOW - timedelta(1)
                    ),
                    OptOut(
                        "c3", party, OptOutKind.SALE_SHARING, SignalSource.FORM, NOW - timedelta(1)
                    ),
                ]
                if party == "chirp"
                else []
            )
            accord.import_records(people, consents, opt_outs)


def write(path: Path, prefix: str) -> Path:
    path.write_text(
        "person,email\n" + "".join(f"{prefix}{n},{e}\n" for n, e in EMAILS.items()),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("protocol", ["ecdh", "oprf"])
def test_psi_run_leaves_out_people_who_opted_out_in_texas_and_germany(
    tmp_path: Path, protocol: str
) -> None:
    build(tmp_path)
    out = tmp_path / "matched.txt"
    result = CliRunner().invoke(
        psi_app,
        [
            "run",
            "--ours", str(write(tmp_path / "chirp.csv", "c")),
            "--theirs", str(write(tmp_path / "reelix.csv", "m")),
            "--as", "chirp",
            "--with", "reelix",
            "--agreement", AUDIENCE,
            "--clause", "chirp-match",
            "--their-clause", "reelix-match",
            "--purpose", ADS,
            "--workers", "1",
            "--data-dir", str(tmp_path),
            "--out", str(out),
            "--protocol", protocol,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # Only c1 (Texas) and c4 (Germany), who did not opt out, took part and were matched.
    assert out.read_text() == "c1\nc4\n"


def test_decide_leaves_out_people_who_opted_out_in_texas_and_germany(tmp_path: Path) -> None:
    build(tmp_path)
    result = CliRunner().invoke(
        accord_app,
        [
            "decide",
            "--requester", "reelix",
            "--agreement", AUDIENCE,
            "--clause", "chirp-match",
            "--purpose", ADS,
            "--category", EMAIL,
            "--json",
            "--data-dir", str(tmp_path),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["allowed"] is True
    assert decision["people_allowed"] == 2
    withheld = {rule: n for rule, n in decision["people_withheld_by_rule"].items() if n}
    # each one kept out under the law where they live
    assert withheld == {"law:opt-out.us-tx": 1, "law:gdpr.object-direct-marketing": 1}
