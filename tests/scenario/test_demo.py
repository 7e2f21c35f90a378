"""``accord demo`` end to end on a small population: every flow, its counts, the ledger, the report.

The counts the demo prints are checked against a recomputation from the parties' own SQLite files
and the population's consent records, judged in Python (not by the store's SQL or by Cedar).
"""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from rich.console import Console
from typer.testing import CliRunner

from accord.cli import app
from accord.consent import Operation, PersonFacts
from accord.ledger.audit import verify_ledger
from accord.pets.budget import PrivacyBudgets
from accord.requests import Request
from accord.scenario.demo import DEMO_AT, REPORTS, DemoResult, FlowResult, run_demo
from accord.scenario.population import REELIX, generate
from accord.scenario.report import sankey_links
from accord.service import Accord
from builders import for_title

pytestmark = pytest.mark.integration

PEOPLE, SEED = 600, 5


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, Path, str]:
    folder = tmp_path_factory.mktemp("demo")
    console = Console(file=io.StringIO(), width=200, record=True)
    report = folder / "accord-report.html"
    result = run_demo(console, people=PEOPLE, seed=SEED, data_dir=folder / "data", report=report)
    return result, folder, console.export_text()


def flow(result: DemoResult, key: str) -> FlowResult:
    (found,) = [f for f in result.flows if f.key == key]
    return found


def rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchall()


def test_every_flow_of_the_filings_and_every_abuse_runs(demo: tuple[DemoResult, Path, str]) -> None:
    result, _, printed = demo
    keys = {f.key for f in result.flows}
    assert {
        "account-link",
        "friend-picker",
        "message-sync",
        "send-recommendation",
        "watch-activity",
        "watch-activity-title",
        "recommendation-report",
        "interest-segments",
    } <= keys
    abuses = [f for f in result.flows if f.abuse]
    assert len(abuses) >= 6
    for f in result.flows:
        assert f.name in printed
    assert "ledger verified" in printed


def test_no_abuse_releases_anything_and_each_is_logged(demo: tuple[DemoResult, Path, str]) -> None:
    result, _, _ = demo
    for f in result.flows:
        if not f.abuse:
            continue
        assert f.moved == 0, f.name
        assert f.people == 0, f.name
        assert f.entries >= 1, f.name  # the refusal (or the empty release) is in the ledger
        assert f.refused or f.kept_out, f.name
        for rule in [*f.refusals, *f.kept_out]:
            assert f.reasons.get(rule), (f.name, rule)
    assert "law:sca.no-bulk-read" in flow(result, "abuse-bulk-inbox").refusals
    assert "lifecycle:chirp-reelix-titan" in flow(result, "abuse-titan").refusals
    assert "agreement:unknown" in flow(result, "abuse-secret").refusals
    vppa = flow(result, "abuse-vppa")
    assert vppa.kept_out.get("law:vppa.consent") == vppa.considered


def test_watch_activity_released_exactly_the_consenting_members_events(
    demo: tuple[DemoResult, Path, str],
) -> None:
    result, folder, _ = demo
    population = generate(PEOPLE, seed=SEED, at=DEMO_AT)
    reelix_people = [p for p in population.people if p.party == REELIX]
    with Accord.open(data_dir=folder / "data") as accord:
        feed = accord.policy().decide(_watch_request())
    assert feed.filter is not None
    facts = {
        p.id: PersonFacts.of(p, population.consents, population.opt_outs) for p in reelix_people
    }
    allowed = feed.filter.allowed(facts.values())
    events = rows(
        folder / "data" / "parties" / "reelix.db", "SELECT member_id, title_id FROM watch_events"
    )
    # Each viewing is judged for its own title: a member's case-by-case exclusions hold back that
    # title's viewings, and a consent for one disclosure of a title lets that title's through.
    by_title = {title: for_title(feed.filter, title) for title in {t for _, t in events}}
    expected = sum(1 for member, title in events if by_title[title].admits(facts[member]))
    assert any(member in allowed for member, _ in events)
    automatic = flow(result, "watch-activity")
    assert automatic.records == expected > 0
    assert automatic.admitted == len(allowed)
    assert automatic.considered == PEOPLE
    # Everyone the filter kept out failed at least one rule, and each rule's count is bounded.
    assert sum(automatic.kept_out.values()) >= PEOPLE - len(allowed)
    assert max(automatic.kept_out.values()) <= PEOPLE - len(allowed)


def _watch_request() -> Request:
    return Request(
        requester="chirp",
        agreement="chirp-reelix",
        clause="watch-activity",
        operation=Operation.READ,
        purpose="functional.service",
        categories=frozenset({"user.behavior.media_consumption"}),
        at=DEMO_AT,
    )


def test_the_ledger_holds_every_exchange_and_verifies(demo: tuple[DemoResult, Path, str]) -> None:
    result, folder, _ = demo
    for f in result.flows:
        # A decision and a release per allowed exchange (a write adds none), one entry per
        # refusal, and before each noised answer the spend of its privacy budget.
        spends = f.allowed if f.epsilon else 0
        assert f.entries == 2 * f.allowed + f.refused + spends, f.name
    with Accord.open(data_dir=folder / "data") as accord:
        audit = verify_ledger(accord.ledger)
        assert audit.ok
        assert audit.size == result.ledger_size
        (size, _, note) = accord.ledger.checkpoints()[-1]
    assert size == result.ledger_size
    assert note == result.checkpoint


def test_messages_synced_are_only_those_reelix_sent(demo: tuple[DemoResult, Path, str]) -> None:
    result, folder, _ = demo
    chirp = folder / "data" / "parties" / "chirp.db"
    sent_by_reelix = rows(chirp, "SELECT count(*) FROM messages WHERE sent_via = 'reelix'")[0][0]
    sync = flow(result, "message-sync")
    assert sync.allowed == sync.exchanges > 0
    assert sync.records <= sent_by_reelix


def test_recommendations_cross_only_as_messages_on_the_senders_behalf(
    demo: tuple[DemoResult, Path, str],
) -> None:
    result, folder, _ = demo
    send = flow(result, "send-recommendation")
    chirp = folder / "data" / "parties" / "chirp.db"
    landed = rows(
        chirp,
        "SELECT sender_id, sent_via FROM messages WHERE body LIKE 'I think you would like %'",
    )
    assert len(landed) == send.written
    assert {via for _, via in landed} <= {"reelix"}
    assert send.written < send.exchanges + send.delivered_in_reelix  # some were not allowed


def test_the_report_is_noised_and_spends_what_it_says(
    demo: tuple[DemoResult, Path, str],
) -> None:
    """The report's clause has a privacy budget: each of the three reports (aggregate, under
    legitimate interests, needing no consent) is differentially private, and spends its epsilon
    of each sender's budget and of the clause's, as it says; nothing is said of the groups held
    back, and a row shown is said to be about at least the minimum of 50 people."""
    result, folder, printed = demo
    report = flow(result, "recommendation-report")
    assert report.allowed == 3
    spent = sum(epsilon for _, epsilon in REPORTS.values())
    assert report.epsilon == pytest.approx(spent)
    assert spent <= 1.0  # within the clause's privacy_budget
    assert report.people % 50 == 0
    assert report.people <= 50 * report.allowed
    assert f"spent epsilon {spent:.2g}" in report.noise
    assert f"noised: ε {spent:.2g} spent" in printed
    assert str(escape(report.noise)) in (folder / "accord-report.html").read_text()
    reelix = folder / "data" / "parties" / "reelix.db"
    interfaces = {i for (i,) in rows(reelix, "SELECT DISTINCT interface FROM recommendations")}
    for row in report.sample:
        assert row[0] in interfaces
        for n in row[1:]:
            assert isinstance(n, int)
            assert n >= 0
    with Accord.open(data_dir=folder / "data") as accord:
        budgets = PrivacyBudgets(accord.engine, accord.ledger)
        clause = budgets.clause_spent(REELIX, "chirp-reelix", "recommendation-report")
    assert clause == pytest.approx(spent)
    assert not hasattr(report, "suppressed")


def test_the_sankey_adds_up_at_every_stage(demo: tuple[DemoResult, Path, str]) -> None:
    result, _, _ = demo
    links = sankey_links(result.flows)
    moved = sum(f.moved or len(f.sample) for f in result.flows)
    holders = sum(n for a, _, _, n in links if a.endswith("(holds)"))
    receivers = sum(n for _, b, _, n in links if b.endswith("(receives)"))
    assert holders == receivers == moved > 0


def test_the_cli_writes_the_report(tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    outcome = CliRunner().invoke(
        app,
        ["demo", "--people", "200", "--data-dir", str(tmp_path / "d"), "--report", str(report)],
    )
    assert outcome.exit_code == 0, outcome.output
    html = report.read_text()
    assert "flows-sankey" in html
    assert "accord.local/ledger" in html


def test_the_replay_is_left_out_when_asked_and_the_demo_says_so(tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    args = ["demo", "--people", "150", "--data-dir", str(tmp_path / "d"), "--report", str(report)]
    outcome = CliRunner().invoke(app, [*args, "--no-audit"])
    assert outcome.exit_code == 0, outcome.output
    assert "the auditor's replay was not run" in outcome.output
    assert 'id="audit-verdict"' not in report.read_text()
    outcome = CliRunner().invoke(app, [*args, "--audit"])
    assert outcome.exit_code == 0, outcome.output
    assert "audit: no differences" in outcome.output
    assert 'id="audit-verdict"' in report.read_text()


def test_a_report_that_cannot_be_written_says_where(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    outcome = CliRunner().invoke(
        app,
        [
            "demo",
            "--people",
            "50",
            "--data-dir",
            str(tmp_path / "d"),
            "--report",
            str(blocked / "r.html"),
        ],
    )
    assert outcome.exit_code == 2
    assert "cannot write the report" in outcome.output
    assert "Traceback" not in outcome.output


def test_the_auditors_replay_finds_no_difference(demo: tuple[DemoResult, Path, str]) -> None:
    """`accord audit`, judging every release again by its own reading of the statutes from the
    parties' databases and the consent records, finds no one released who should not have been
    and no one a bulk read left out; the demo shows it, and so does the report."""
    result, folder, printed = demo
    replayed = result.audit
    assert replayed is not None
    # Every exchange the gateway allowed logged one release; each was replayed.
    assert replayed.releases == sum(f.allowed for f in result.flows)
    assert replayed.people > 0
    assert replayed.rows_compared > 0
    assert [d.to_json() for d in replayed.differences] == []
    assert "audit: no differences" in printed
    outcome = CliRunner().invoke(
        app,
        [
            "audit",
            "--data-dir",
            str(folder / "data"),
            "--scenario",
            str(folder / "data" / "parties"),
            "--json",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.output)
    assert report["differences"] == []
    assert report["releases"] == replayed.releases
    html = (folder / "accord-report.html").read_text()
    assert 'id="audit-verdict"' in html
    assert "No differences" in html


def test_the_erased_member_is_gone_from_the_feed_read_after(
    demo: tuple[DemoResult, Path, str],
) -> None:
    """The demo erases a member whose every viewing the automatic feed released (an ongoing,
    distinct consent with no title excluded); the feed read again releases exactly the first
    read's records less that member's viewings, and nothing ties the member to the ledger."""
    result, folder, printed = demo
    erased = result.erasure
    assert erased is not None
    assert erased.done.withdrawn >= 1
    assert erased.done.entries_forgotten >= 1  # the first read had released them
    assert erased.done.recipients == ("chirp",)
    with closing(sqlite3.connect(folder / "data" / "parties" / "reelix.db")) as db:
        (theirs,) = db.execute(
            "SELECT count(*) FROM watch_events WHERE member_id = ?", (erased.person,)
        ).fetchone()
    assert theirs > 0
    before = flow(result, "watch-activity").records
    after = flow(result, "watch-activity-after-erasure")
    # Fewer still where the first read spent a consent given for one disclosure; the auditor's
    # replay (no differences, above) checks the second read released everyone it should.
    assert after.records == erased.records_after <= before - theirs
    assert after.allowed == 1
    assert not erased.key_again
    with Accord.open(data_dir=folder / "data") as accord:
        assert accord.consents(REELIX, erased.person) == []
        assert accord.ledger.key_of(f"{REELIX}/{erased.person}") is None
    assert f"erasure: {REELIX}/{erased.person}" in printed
    html = (folder / "accord-report.html").read_text()
    assert '<p class="allowed" id="erasure-verdict">' in html
