"""``accord``: the command line. Agreements, consent, decisions, the ledger and the demo.

Every command prints a clear message and exits non-zero on bad input or a refused operation; no
stack trace reaches the person at the terminal.

Importing this module (and every ``*cli`` module it gathers) loads only Typer, Rich and the enums
and defaults the options name: ``accord --help`` and each group's help need nothing more. A
command imports the machinery it runs on (the store, the policy engine, the web stack, DuckDB)
when it runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from accord.ads.cli import app as ads_app
from accord.api.cli import app as api_app
from accord.api.cli import serve as api_serve
from accord.audit.cli import command as audit_command
from accord.consent import (
    Consent,
    Method,
    Operation,
    OptOut,
    OptOutKind,
    Scope,
    SignalSource,
)
from accord.console import DatabaseUrl, DataDir, err, handled, instant, open_accord, printable
from accord.datafolder import DataFolder
from accord.documents import read_text
from accord.errors import AgreementFormatError, ConsentError, InvalidInput, NotFound
from accord.examples_cli import command as examples_command
from accord.ledger.cli import app as ledger_app
from accord.person_cli import app as person_app
from accord.pets.cleanroom_cli import app as cleanroom_app
from accord.pets.psi.cli import app as psi_app
from accord.requests import Request, Subjects, SubjectsKind
from accord.scenario import ADS_BY_DEFAULT_FROM, ADS_BY_DEFAULT_UP_TO, AUDIT_BY_DEFAULT_UP_TO
from accord.scenario.cli import app as scenario_app

if TYPE_CHECKING:
    from accord.service import Outcome

app = typer.Typer(
    help="Accord: data partnerships that release only what the people, the law and a published "
    "agreement allow, into a log anyone can verify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
agreement_app = typer.Typer(
    help="Agreements: check, register, review, activate, list.", no_args_is_help=True
)
consent_app = typer.Typer(help="Consent: grant, withdraw, list; opt-outs.", no_args_is_help=True)
app.add_typer(agreement_app, name="agreement")
app.add_typer(consent_app, name="consent")
app.add_typer(ledger_app, name="ledger")
app.add_typer(scenario_app, name="scenario")
app.add_typer(api_app, name="app")
app.add_typer(cleanroom_app, name="cleanroom")
app.add_typer(psi_app, name="psi")
app.add_typer(person_app, name="person")
app.add_typer(ads_app, name="ads")
app.command("serve")(api_serve)
app.command("audit")(audit_command)
app.command("examples")(examples_command)

# Tables of decisions need room; when output is not a terminal, do not squeeze them to 80.
# Piped output is wide (a table a script reads should not wrap), unless COLUMNS says otherwise.
out = Console(width=None if Console().is_terminal or "COLUMNS" in os.environ else 140)


# --- agreements --------------------------------------------------------------------------------


@agreement_app.command("check")
@handled
def agreement_check(
    files: Annotated[list[Path], typer.Argument(help="Agreement YAML files.", exists=False)],
) -> None:
    """Validate agreement documents and explain, in plain words, what each lets through."""
    from accord import agreements as ag

    failed = 0
    for path in files:
        try:
            text = read_text(path, what="the agreement")
        except InvalidInput as exc:
            err.print(f"[bold red]{escape(exc.where or str(path))}:[/] {escape(exc.message)}")
            failed += 1
            continue
        try:
            agreement = ag.parse(text, source=str(path))
        except AgreementFormatError as exc:
            failed += 1
            err.print(f"[bold red]{escape(str(path))}: {len(exc.problems)} problem(s)[/]")
            for problem in exc.problems:
                err.print(f"  {escape(problem)}")
            continue
        out.print(Panel(escape(ag.describe(agreement)), title=f"[green]{escape(str(path))}: valid"))
    if failed:
        raise typer.Exit(2)


@agreement_app.command("register")
@handled
def agreement_register(
    files: Annotated[list[Path], typer.Argument(help="Agreement YAML files.")],
    by: Annotated[str, typer.Option(help="Who registers it.")] = "registry",
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Register agreements as drafts (a new version goes back to draft)."""
    with open_accord(database_url, data_dir) as accord:
        for path in files:
            reg = accord.register(_read(path), source=str(path), by=by)
            out.print(f"registered {reg.agreement.id} v{reg.agreement.version}: {reg.status.value}")


@agreement_app.command("review")
@handled
def agreement_review(
    agreement_id: Annotated[str, typer.Argument(help="The agreement's id.")],
    reviewer: Annotated[str, typer.Option(help="Who reviewed it.")],
    findings: Annotated[str, typer.Option(help="What the review found (or 'none').")],
    approve: Annotated[bool, typer.Option("--approve/--reject", help="The verdict.")] = True,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Record the privacy review an agreement needs before it can be activated."""
    with open_accord(database_url, data_dir) as accord:
        reg = accord.review(agreement_id, reviewer=reviewer, findings=findings, approved=approve)
    out.print(f"{agreement_id}: {reg.status.value} (reviewed by {reviewer})")


def _move(to: Literal["in_review", "active", "suspended", "ended"]) -> Callable[..., None]:
    """A command moving an agreement to the status ``to`` (an ``agreements.Status`` value)."""

    @handled
    def command(
        agreement_id: Annotated[str, typer.Argument(help="The agreement's id.")],
        by: Annotated[str, typer.Option(help="Who does it.")] = "registry",
        note: Annotated[str, typer.Option(help="Why.")] = "",
        database_url: DatabaseUrl = None,
        data_dir: DataDir = None,
    ) -> None:
        from accord.agreements import Status

        with open_accord(database_url, data_dir) as accord:
            reg = accord.move(agreement_id, Status(to), by=by, note=note)
        out.print(f"{agreement_id}: {reg.status.value}")

    return command


agreement_app.command("submit", help="Send a draft for privacy review.")(_move("in_review"))
agreement_app.command("activate", help="Activate (and publish) a reviewed agreement.")(
    _move("active")
)
agreement_app.command("suspend", help="Suspend an active agreement.")(_move("suspended"))
agreement_app.command("end", help="End an agreement for good.")(_move("ended"))


@agreement_app.command("list")
@handled
def agreement_list(
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """List registered agreements: status, review, validity, clauses."""
    with open_accord(database_url, data_dir, existing=True) as accord:
        registered = accord.agreements()
    table = Table(title="Agreements")
    table.add_column("id", no_wrap=True)  # an id is what the other commands take: never cut
    for col in ("version", "parties", "status", "published", "review", "valid"):
        table.add_column(col)
    table.add_column("clauses", overflow="fold")
    for reg in registered:
        a = reg.agreement
        review = (
            f"{reg.review.reviewer}, {reg.review.reviewed_on} "
            f"({'approved' if reg.review.approved else 'rejected'})"
            if reg.review
            else "[red]none[/]"
        )
        table.add_row(
            a.id,
            str(a.version),
            f"{a.provider} → {a.recipient}",
            reg.status.value,
            "yes" if reg.published else "no",
            review,
            f"{a.valid_from} – {a.valid_until}",
            ", ".join(c.id for c in a.clauses),
        )
    out.print(table)


def _read(path: Path) -> str:
    return read_text(path)


# --- consent -----------------------------------------------------------------------------------


@consent_app.command("grant")
@handled
def consent_grant(
    person: Annotated[str, typer.Option(help="The person's id at the controller.")],
    controller: Annotated[str, typer.Option(help="The party that holds the data.")],
    recipient: Annotated[str, typer.Option(help="The party the data may go to.")],
    purpose: Annotated[list[str], typer.Option(help="A purpose (repeat for several).")],
    category: Annotated[list[str], typer.Option(help="A data category (repeat).")],
    notice: Annotated[str, typer.Option(help="The notice shown (URL or version).")],
    jurisdiction: Annotated[
        str | None,
        typer.Option(
            help="Where the consent was collected (ISO 3166, e.g. US-CA, DE); default: where the "
            "person lives. It never changes where the person lives, which the party records."
        ),
    ] = None,
    consent_id: Annotated[str | None, typer.Option("--id", help="Record id.")] = None,
    method: Annotated[Method, typer.Option(help="How it was collected.")] = Method.IN_APP_DIALOG,
    withdraw_via: Annotated[
        Method | None, typer.Option(help="How the person can withdraw.")
    ] = Method.SETTINGS_PAGE,
    separate: Annotated[
        bool,
        typer.Option(
            "--separate/--bundled",
            help="Asked for on its own (VPPA 'distinct and separate', GDPR Art. 7(2)).",
        ),
    ] = True,
    operation: Annotated[list[Operation], typer.Option(help="read and/or write.")] = [  # noqa: B006
        Operation.READ
    ],
    given: Annotated[str | None, typer.Option(help="When given (ISO 8601; default now).")] = None,
    expires: Annotated[str | None, typer.Option(help="When it expires (ISO 8601).")] = None,
    title: Annotated[
        str | None, typer.Option(help="For one disclosure only: the title it is for.")
    ] = None,
    exclude_title: Annotated[
        list[str] | None, typer.Option(help="A title withheld case by case (repeat).")
    ] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Record a person's consent (ISO/IEC TS 27560 fields)."""
    given_at = instant(given, "--given") or datetime.now(UTC)
    expires_at = instant(expires, "--expires")
    with open_accord(database_url, data_dir) as accord:
        try:
            home = accord.person(controller, person).jurisdiction
        except NotFound as exc:
            from accord.store.erased import is_erased

            with accord.session() as s:
                if is_erased(s, controller, person):
                    raise ConsentError(
                        f"party {controller} erased person {person!r}: no record about them is "
                        "taken again (someone who comes back is recorded under a new id)",
                        where="--person",
                    ) from None
            raise ConsentError(
                f"{exc.message}; record the party's people first, with where each lives "
                "(`accord person load`): a consent never places a person",
                where="--person",
            ) from None
        record = Consent(
            id=consent_id or f"{controller}-{person}-{recipient}-{int(given_at.timestamp())}",
            person=person,
            controller=controller,
            recipient=recipient,
            purposes=frozenset(purpose),
            categories=frozenset(category),
            jurisdiction=jurisdiction or home,
            given_at=given_at,
            method=method,
            notice=notice,
            operations=frozenset(operation),
            distinct_and_separate=separate,
            withdrawal_method=withdraw_via,
            expires_at=expires_at,
            scope=Scope.ONE_DISCLOSURE if title else Scope.ONGOING,
            disclosure=title,
            excluded_titles=frozenset(exclude_title or ()),
        )
        accord.grant(record)
    out.print(f"consent {printable(record.id)} recorded")


@consent_app.command("withdraw")
@handled
def consent_withdraw(
    consent_id: Annotated[str, typer.Argument(help="The consent record's id.")],
    at: Annotated[str | None, typer.Option(help="When (ISO 8601; default now).")] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Withdraw a consent, and say what the law then requires."""
    with open_accord(database_url, data_dir) as accord:
        try:
            record, duty = accord.withdraw(consent_id, instant(at, "--at"))
        except NotFound as exc:
            # A consent id that is not there is a mistake in the input, like any other (exit 2).
            raise InvalidInput(
                f"{exc.message}: `accord consent list --person P --controller C` shows the ids",
                where=consent_id,
            ) from None
    when = record.withdrawn_at.isoformat(timespec="seconds") if record.withdrawn_at else "now"
    out.print(f"consent {printable(record.id)} withdrawn at {when}")
    out.print(f"  {printable(duty.reason)}")
    if duty.notify:
        out.print(f"  recipients to tell: {printable(', '.join(sorted(duty.notify)))}")


@consent_app.command("list")
@handled
def consent_list(
    person: Annotated[str, typer.Option(help="The person's id at the controller.")],
    controller: Annotated[str, typer.Option(help="The party that holds the data.")],
    at: Annotated[str | None, typer.Option(help="As of when (ISO 8601; default now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """A person's consents and where each stands now, and their opt-outs of sale and sharing.

    Each consent: recipient, purposes, categories, operations, titles, when given, when it ends
    (its stated expiry, and for a US viewer's consent given in advance the VPPA's two years), and
    its state: in force, not yet given, withdrawn, expired or spent (one disclosure, made).
    """
    from accord.consent_view import person_json, person_view
    from accord.store.erased import is_erased

    with open_accord(database_url, data_dir, existing=True) as accord:
        standing = accord.standing(controller, person, instant(at, "--at"))
        if standing.lives_in is None and not standing.consents and not standing.opt_outs:
            with accord.session() as s:
                erased = is_erased(s, controller, person)
            if erased:
                raise InvalidInput(
                    f"party {controller} erased person {person!r}: no record about them is kept",
                    where="--person",
                )
            raise InvalidInput(
                f"party {controller} holds no person {person!r} and no consent or opt-out of "
                "theirs is recorded",
                where="--person",
            )
    if as_json:
        typer.echo(json.dumps(person_json(standing), indent=2))
    else:
        out.print(person_view(standing))


@consent_app.command("opt-out")
@handled
def consent_opt_out(
    person: Annotated[str, typer.Option(help="The person's id at the controller.")],
    controller: Annotated[str, typer.Option(help="The party that holds the data.")],
    source: Annotated[SignalSource, typer.Option(help="Where the opt-out came from.")] = (
        SignalSource.GPC
    ),
    at: Annotated[str | None, typer.Option(help="When (ISO 8601; default now).")] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Record an opt-out of sale and sharing (honoured everywhere), e.g. a Sec-GPC: 1 signal."""
    when = instant(at, "--at") or datetime.now(UTC)
    with open_accord(database_url, data_dir) as accord:
        accord.opt_out(OptOut(person, controller, OptOutKind.SALE_SHARING, source, when))
    out.print(
        f"opt-out of sale/sharing recorded for {printable(person)} at {printable(controller)}"
    )


@consent_app.command("opt-in")
@handled
def consent_opt_in(
    person: Annotated[str, typer.Option(help="The person's id at the controller.")],
    controller: Annotated[str, typer.Option(help="The party that holds the data.")],
    at: Annotated[str | None, typer.Option(help="When (ISO 8601; default now).")] = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Record that a person withdrew their opt-out of sale and sharing (opted back in).

    Record it only once the person has asked and then confirmed it (11 CCR 7028(a): two steps).
    Their opt-out stays on record, ended: releases made while it was in force are still judged by
    it. From then on marketing flows may include them again, where their consent allows.

    Named as 11 CCR 7028 names it ("Requests to Opt-In After Opting-Out of the Sale or Sharing of
    Personal Information"). ``opt-out --undo`` would read as if the opt-out had never been: it
    is not erased but ended, and the ledger records the opt-in as a change of its own.
    """
    with open_accord(database_url, data_dir) as accord:
        ended = accord.opt_in(controller, person, instant(at, "--at"))
    since = ", ".join(o.at.date().isoformat() for o in ended)
    out.print(
        f"opt-out of sale/sharing withdrawn for {printable(person)} at {printable(controller)} "
        f"(in force since {since})"
    )


# --- decide ------------------------------------------------------------------------------------


def _subjects(text: str) -> Subjects:
    if text == "all":
        return Subjects()
    kind, _, rest = text.partition(":")
    if kind == "people" and rest:
        return Subjects(SubjectsKind.PEOPLE, people=frozenset(rest.split(",")))
    if kind in {"friends_of", "threads_of"} and rest:
        return Subjects(SubjectsKind(kind), anchor=rest)
    raise InvalidInput(
        f"--subjects {text!r}: use 'all', 'people:ID,ID', 'friends_of:ID' or 'threads_of:ID'"
    )


@app.command()
@handled
def decide(
    requester: Annotated[str, typer.Option(help="The party asking.")],
    agreement: Annotated[str, typer.Option(help="The agreement it asks under.")],
    clause: Annotated[str, typer.Option(help="The clause.")],
    purpose: Annotated[str, typer.Option(help="The purpose (a fideslang data use).")],
    category: Annotated[list[str], typer.Option(help="A data category (repeat).")],
    operation: Annotated[Operation, typer.Option(help="read or write.")] = Operation.READ,
    field: Annotated[list[str] | None, typer.Option(help="A field collection.field.")] = None,
    subjects: Annotated[
        str, typer.Option(help="all | people:ID,ID | friends_of:ID | threads_of:ID")
    ] = "all",
    on_behalf_of: Annotated[str | None, typer.Option(help="The person it acts for.")] = None,
    title: Annotated[str | None, typer.Option(help="The title, for viewing data.")] = None,
    at: Annotated[str | None, typer.Option(help="When (ISO 8601; default now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Decide a request and explain it: allowed or not, why, and whose data it lets through.

    The decision is written to the ledger, refused or not.
    """
    request = Request(
        requester=requester,
        agreement=agreement,
        clause=clause,
        operation=operation,
        purpose=purpose,
        categories=frozenset(category),
        fields=frozenset(field or ()),
        subjects=_subjects(subjects),
        on_behalf_of=on_behalf_of,
        title=title,
        at=instant(at, "--at") or datetime.now(UTC),
    )
    with open_accord(database_url, data_dir) as accord:
        outcome = accord.decide(request)
    if as_json:
        out.print_json(json.dumps(_outcome_json(outcome)))
    else:
        show_outcome(outcome)
    if not outcome.decision.allowed:
        raise typer.Exit(3)


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        **outcome.decision.summary(),
        "people_allowed": outcome.allowed_people,
        "people_considered": outcome.considered_people,
        "people_withheld_by_rule": outcome.withheld,
        "ledger_index": outcome.receipt.index if outcome.receipt else None,
    }


def show_outcome(outcome: Outcome) -> None:
    """Print a decision for a person to read."""
    d = outcome.decision
    colour = "green" if d.allowed else "red"
    lines = [escape(d.reason), "", f"deciding rules: {escape(', '.join(d.rules))}"]
    if d.allowed:
        lines.append(f"fields: {escape(', '.join(sorted(d.fields)) or 'as the clause lists')}")
        lines.append(
            f"people let through: {outcome.allowed_people:,} of {outcome.considered_people:,}"
        )
        kept_out = [(rule, n) for rule, n in outcome.withheld.items() if n]
        for rule, count in sorted(kept_out, key=lambda kv: -kv[1]):
            reason = d.filter.reason_for(rule) if d.filter else rule
            lines.append(f"  withheld {count:,}: {escape(reason)} [{escape(rule)}]")
    if outcome.receipt:
        lines.append(f"ledger entry #{outcome.receipt.index}")
    title = "ALLOWED" if d.allowed else "REFUSED"
    out.print(Panel("\n".join(lines), title=f"[bold {colour}]{title}[/]", border_style=colour))


# --- demo --------------------------------------------------------------------------------------


@app.command()
@handled
def demo(
    people: Annotated[
        int, typer.Option(min=1, help="People in the population (each at both parties).")
    ] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed runs the same demo.")] = 7,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="The data folder the demo writes its scenario into: both parties' databases, "
            "the store and the ledger's key, where every other command finds them. A folder "
            "holding an earlier demo or scenario is replaced; a store no scenario made is not "
            "[default: ACCORD_DATA_DIR or accord-data].",
            show_default=False,
        ),
    ] = None,
    report: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = Path(
        "accord-report.html"
    ),
    audit: Annotated[
        bool | None,
        typer.Option(
            "--audit/--no-audit",
            help="Replay every release with the auditor's own evaluator at the end (default: up "
            f"to {AUDIT_BY_DEFAULT_UP_TO:,} people; it judges each person in plain Python).",
        ),
    ] = None,
    ads: Annotated[
        bool | None,
        typer.Option(
            "--ads/--no-ads",
            help="Run Chirp's ad season first (a week of each of three years, Reelix spending in "
            "the filings' shape) and show each advertiser's spend beside its data access "
            f"(default: from {ADS_BY_DEFAULT_FROM:,} to {ADS_BY_DEFAULT_UP_TO:,} people).",
        ),
    ] = None,
) -> None:
    """Run every flow of the Chirp–Reelix partnership through the gateway, and write a report."""
    from accord.scenario.demo import run_demo

    folder = DataFolder.chosen(data_dir).path
    run_demo(out, people=people, seed=seed, data_dir=folder, report=report, replay=audit, ads=ads)


def main() -> None:
    """Entry point of the ``accord`` command."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
