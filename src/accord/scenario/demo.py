"""``accord demo``: the Chirp–Reelix partnership's requests, decided and logged.

It registers the partnership's published agreement (reviewed and activated) and a Titan-style
whitelist that was never reviewed, loads a synthetic population with its consents, then sends
every flow of the partnership and every abuse of the filings as a request. It prints each
decision with its reason and how many people's data it lets through, verifies the ledger and
prints its signed checkpoint.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accord import agreements as ag
from accord.consent import Operation
from accord.errors import LedgerIntegrityError
from accord.ledger.audit import verify_ledger
from accord.requests import Request, Subjects, SubjectsKind
from accord.scenario.population import CHIRP, REELIX, generate, person_id
from accord.service import Accord, Outcome

# A fixed instant, so the same seed always gives the same decisions.
DEMO_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Flow:
    """One request of the demo and what it stands for."""

    name: str
    request: Request
    abuse: bool = False


def flows(at: datetime) -> list[Flow]:
    """The partnership's flows, and the abuses of the filings, as requests."""
    c1, r1 = person_id(CHIRP, 1), person_id(REELIX, 1)

    def req(clause: str, **kw: object) -> Request:
        base: dict[str, object] = {
            "requester": REELIX,
            "agreement": "chirp-reelix",
            "clause": clause,
            "operation": Operation.READ,
            "purpose": "functional.service",
            "at": at,
        }
        base.update(kw)
        return Request(**base)  # type: ignore[arg-type]

    return [
        Flow(
            "Friend picker: friends who agreed to be shown",
            req(
                "friend-picker",
                categories=frozenset({"user.social"}),
                fields=frozenset({"friendships.friend_id"}),
                subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor=c1),
                on_behalf_of=c1,
            ),
        ),
        Flow(
            "Message sync: threads where every participant agreed",
            req(
                "message-sync",
                categories=frozenset({"user.content.private"}),
                fields=frozenset({"messages.thread_id", "messages.body"}),
                subjects=Subjects(SubjectsKind.THREADS_OF, anchor=c1),
                on_behalf_of=c1,
            ),
        ),
        Flow(
            "Send a recommendation as a Chirp message",
            req(
                "send-recommendation",
                operation=Operation.WRITE,
                categories=frozenset({"user.content.private"}),
                subjects=Subjects(SubjectsKind.PEOPLE, people=frozenset({c1})),
                on_behalf_of=c1,
            ),
        ),
        Flow(
            "Watch activity to the Chirp feed",
            req(
                "watch-activity",
                requester=CHIRP,
                categories=frozenset({"user.behavior.media_consumption"}),
            ),
        ),
        Flow(
            "Watch activity for one title (case by case)",
            req(
                "watch-activity",
                requester=CHIRP,
                categories=frozenset({"user.behavior.media_consumption"}),
                title="title-0003",
            ),
        ),
        Flow(
            "Recommendation report (aggregate)",
            req(
                "recommendation-report",
                requester=CHIRP,
                purpose="analytics.reporting.content_performance",
                categories=frozenset({"user.behavior"}),
            ),
        ),
        Flow(
            "Interest segments for ad targeting",
            req(
                "interest-segments",
                requester=CHIRP,
                purpose="marketing.advertising.third_party.targeted",
                categories=frozenset({"user.behavior.media_consumption"}),
            ),
        ),
        Flow(
            "ABUSE: read every inbox in bulk",
            req(
                "message-sync",
                categories=frozenset({"user.content.private"}),
            ),
            abuse=True,
        ),
        Flow(
            "ABUSE: all friends through the unreviewed Titan whitelist",
            req(
                "all-friends",
                agreement="chirp-reelix-titan",
                purpose="marketing.advertising",
                categories=frozenset({"user.social", "user.name"}),
                subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor=c1),
            ),
            abuse=True,
        ),
        Flow(
            "ABUSE: watch history used for ads under the feed clause",
            req(
                "watch-activity",
                requester=CHIRP,
                purpose="marketing.advertising.third_party.targeted",
                categories=frozenset({"user.behavior.media_consumption"}),
            ),
            abuse=True,
        ),
        Flow(
            "ABUSE: a confidential agreement nobody registered",
            req(
                "inbox",
                agreement="extended-api-2013",
                categories=frozenset({"user.content.private"}),
                on_behalf_of=r1,
            ),
            abuse=True,
        ),
        Flow(
            "ABUSE: message contents read beyond the clause's fields",
            req(
                "message-sync",
                categories=frozenset({"user.content.private"}),
                fields=frozenset({"messages.body", "messages.attachments"}),
                subjects=Subjects(SubjectsKind.THREADS_OF, anchor=c1),
                on_behalf_of=c1,
            ),
            abuse=True,
        ),
    ]


def _load(accord: Accord, console: Console, people: int, seed: int) -> None:
    examples = resources.files("accord") / "examples"
    for party in (CHIRP, REELIX):
        accord.add_party(party, party.capitalize())
    for name in ("chirp-reelix.yaml", "chirp-reelix-titan.yaml"):
        accord.register((examples / name).read_text(), source=name, by="partnerships team")
    accord.review(
        "chirp-reelix",
        reviewer="Privacy review board",
        findings="Flows limited to consenting people; messages read only for display and sync; "
        "VPPA consent screen separate; report aggregate with k=50.",
        approved=True,
        on=DEMO_AT.date(),
    )
    accord.move("chirp-reelix", ag.Status.ACTIVE, by="privacy review board")
    population = generate(people, seed=seed, at=DEMO_AT)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(
            "loading consents into the store and ledger", total=len(population.consents)
        )
        accord.import_records(
            population.people,
            population.consents,
            population.opt_outs,
            progress=lambda n: bar.advance(task, n),
        )
    console.print(
        f"{len(population.people):,} people, {len(population.consents):,} consents, "
        f"{len(population.opt_outs):,} opt-outs of sale/sharing"
    )


def run_demo(console: Console, *, people: int, seed: int, data_dir: Path) -> list[Outcome]:
    """Run the demo in a fresh ``data_dir``; the outcomes, in order."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    with Accord.open(data_dir=data_dir) as accord:
        _load(accord, console, people, seed)
        outcomes = [accord.decide(flow.request) for flow in flows(DEMO_AT)]
        _show(console, flows(DEMO_AT), outcomes)
        report = verify_ledger(accord.ledger)
        if not report.ok:
            raise LedgerIntegrityError(
                "the ledger does not verify: " + "; ".join(p.message for p in report.problems)
            )
        checkpoint = accord.ledger.checkpoint()
        console.print(
            Panel(
                escape(checkpoint.note),
                title=f"[green]ledger verified: {report.size:,} entries; signed checkpoint",
            )
        )
    return outcomes


def _show(console: Console, demo_flows: list[Flow], outcomes: list[Outcome]) -> None:
    table = Table(title="Chirp–Reelix: every request, decided", show_lines=True)
    table.add_column("flow", ratio=3)
    table.add_column("decision")
    table.add_column("people let through", justify="right")
    table.add_column("deciding rule / people kept out, by rule", ratio=4)
    table.add_column("ledger #", justify="right")
    reasons: dict[str, str] = {}
    for flow, outcome in zip(demo_flows, outcomes, strict=True):
        d = outcome.decision
        if d.allowed:
            verdict, people = (
                "[green]allowed[/]",
                (f"{outcome.allowed_people:,} of {outcome.considered_people:,}"),
            )
            lines = [escape(", ".join(d.rules))]
            for rule, n in sorted(outcome.withheld.items(), key=lambda kv: -kv[1]):
                if n and d.filter is not None:
                    reasons[rule] = d.filter.reason_for(rule)
                    lines.append(f"  {n:,} × {escape(rule)}")
        else:
            verdict, people = "[red]refused[/]", "0"
            lines = [f"[red]{escape(', '.join(d.rules))}[/]"]
            for rule in d.rules:
                reasons[rule] = d.reason.removeprefix("Refused: ")
        name = f"[bold red]{escape(flow.name)}[/]" if flow.abuse else escape(flow.name)
        index = str(outcome.receipt.index) if outcome.receipt else "-"
        table.add_row(name, verdict, people, "\n".join(lines), index)
    console.print(table)
    legend = Table(title="What each rule means", show_header=True, show_lines=False)
    legend.add_column("rule", no_wrap=True)
    legend.add_column("a person is kept out, or a request refused, because they / it …")
    for rule, reason in sorted(reasons.items()):
        legend.add_row(escape(rule), escape(reason))
    console.print(legend)
