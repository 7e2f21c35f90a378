"""``accord demo``: the Chirp–Reelix partnership of the filings, every flow through the one door.

The demo writes both parties' own databases for a synthetic population
(:func:`~accord.scenario.generate.write_databases`), loads the same people's consents and opt-outs
into an Accord store, registers the partnership's published agreement (reviewed and activated)
beside a Titan-style whitelist nobody reviewed, and then runs every flow of the partnership and
every abuse of the filings through :meth:`accord.gateway.Gateway.exchange`: many people's own
requests for the flows a person starts (the friend picker, message sync, sending a
recommendation, an account link), and one bulk exchange for the flows that move many people's
data at once (watch activity, interest segments, the fortnightly report). Before the flows,
Chirp's ad platform runs a campaign season on a week of each of three years, Reelix buying ads in
the filings' shape (:func:`accord.scenario.ads.run_sampled_season`); after them, each
advertiser's spend is set beside the data access its party holds
(:func:`accord.ads.access.spend_beside_access`), and Reelix's data goes into Chirp's ads under
its consent: audiences, a withdrawal and the rebuild, a lookalike and a campaign's lift
(:mod:`accord.scenario.partner_ads`), then the click model, its cards, one person forgotten and
what the data bought (:mod:`accord.scenario.partner_model`). It prints a summary, verifies the
ledger, signs a checkpoint and writes an HTML report (:mod:`accord.scenario.report`).

The demo is the parties' operator here: it picks which people act, and reads each party's own
database only for what that party itself would know (Chirp resolves a message's recipient to a
thread in its own database). Everything that crosses from one party to the other crosses through
the gateway.
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import Engine

from accord.ads.access import SpendBesideAccess, spend_beside_access
from accord.ads.audiences import MIN_AUDIENCE
from accord.ads.cli import ledger_lines, spend_tables
from accord.ads.model import show_money
from accord.audit import AuditReport
from accord.audit import audit as replay_releases
from accord.audit.cli import show as show_audit
from accord.audit.records import PartyDatabase
from accord.consent import Operation, Scope, years_before
from accord.datafolder import DataFolder
from accord.erasure import Erasure, erase
from accord.errors import AccordError, InvalidInput, LedgerIntegrityError
from accord.gateway import Exchange, Gateway, Keyring, Refused, Release
from accord.ledger.audit import verify_ledger
from accord.requests import Request, Subjects, SubjectsKind
from accord.scenario import ADS_BY_DEFAULT_FROM, ADS_BY_DEFAULT_UP_TO, AUDIT_BY_DEFAULT_UP_TO
from accord.scenario.ads import (
    DEMO_DAYS,
    DEMO_YEARS,
    SampledSeason,
    run_sampled_season,
    sample_windows,
    season_campaigns,
)
from accord.scenario.build import PARTNERSHIP, TITAN, load_population, prepare, register_agreements
from accord.scenario.generate import Written, write_databases
from accord.scenario.partner_ads import run_partner_ads
from accord.scenario.partner_model import PartnerShown, run_partner_model
from accord.scenario.population import CHIRP, REELIX, TITLES, Population, generate, linked
from accord.scenario.report import write_report
from accord.service import Accord, person_ref
from accord.sources import Source, load
from accord.store import filter_sql
from accord.store.driver import dispose
from accord.store.engine import make_engine
from accord.store.repositories import PeopleRepository

# A fixed instant, so the same seed always gives the same decisions.
DEMO_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

WATCHED = "user.behavior.media_consumption"
PRIVATE = "user.content.private"
TARGETED = "marketing.advertising.third_party.targeted"
REPORTING = "analytics.reporting.content_performance"

# How many people act in the flows a person starts, at most (each is one exchange).
ACTORS = {"account-link": 200, "friend-picker": 200, "message-sync": 40, "send": 100}
POPULAR_TITLES = 3


@dataclass
class FlowResult:
    """What one flow of the demo did: its exchanges, whom they let through, what crossed."""

    key: str
    name: str
    agreement: str
    clause: str
    provider: str
    """The party whose data moved (for a write, the party it was written to)."""
    recipient: str
    categories: tuple[str, ...]
    purpose: str
    abuse: bool = False
    exchanges: int = 0
    allowed: int = 0
    refused: int = 0
    people: int = 0
    """People whose data the exchanges released, summed over exchanges."""
    records: int = 0
    written: int = 0
    entries: int = 0
    """Ledger entries the flow's exchanges appended (decisions, releases, refusals)."""
    delivered_in_reelix: int = 0
    undeliverable: int = 0
    """Recommendations with no thread to deliver them in (Chirp opens none for a partner)."""
    admitted: int | None = None
    """Of the people the clause looks at, how many its per-person filter lets through."""
    considered: int | None = None
    kept_out: dict[str, int] = field(default_factory=dict)
    """People the per-person filter keeps out, by rule (one person may fail several rules)."""
    refusals: Counter[str] = field(default_factory=Counter)
    """Refused exchanges by deciding rule."""
    reasons: dict[str, str] = field(default_factory=dict)
    """A sentence for each rule that kept someone out or refused an exchange."""
    columns: tuple[str, ...] = ()
    sample: list[tuple[Any, ...]] = field(default_factory=list)
    """Rows of an aggregate release, to show in the report."""
    epsilon: float = 0.0
    """What the flow's differentially private answers spent of each person's budget, in all."""
    noise: str = ""
    """How the flow's figures were noised, in a sentence (empty if they are exact)."""

    @property
    def moved(self) -> int:
        """Records read or written across the boundary."""
        return self.records + self.written


@dataclass
class DemoResult:
    """Every flow's result, the ledger's size and signed checkpoint, and the population."""

    people: int
    seed: int
    consents: int
    opt_outs: int
    flows: list[FlowResult]
    ledger_size: int
    checkpoint: str
    verifier_key: str
    rows: dict[str, int]
    erasure: ErasureShown | None = None
    """A member erased after the flows, and the feed read again without them."""
    audit: AuditReport | None = None
    """The auditor's replay of every release (``accord audit``), run after the flows."""
    next_steps: tuple[tuple[str, str], ...] = ()
    """Commands to run next on the demo's data folder, each with what it shows."""
    ads: AdsShown | None = None
    """Chirp's ad season, and each advertiser's money beside its party's data access."""
    partner: PartnerShown | None = None
    """Reelix's data in Chirp's ads: audiences, lift, the click model's cards, what it bought."""


@dataclass(frozen=True, slots=True)
class AdsShown:
    """The demo's ad season (a week of each of three years) and, after the flows, every
    advertiser's spend beside the data access its party holds, per year."""

    season: SampledSeason
    money: SpendBesideAccess
    flows_on: date
    """The day of the data flows (every exchange of the demo happens on it)."""


@dataclass(frozen=True, slots=True)
class ErasureShown:
    """A member the feed had released, erased (GDPR Art. 17), and the feed read again."""

    party: str
    person: str
    done: Erasure
    records_after: int
    """Records the automatic feed read released after the erasure."""
    people_after: int
    key_again: bool
    """Whether any entry after the erasure tied the person to a ledger key again (it must not)."""


# -- the world -----------------------------------------------------------------------------------


@dataclass
class _World:
    accord: Accord
    gateway: Gateway
    tokens: dict[str, str]
    population: Population
    files: dict[str, Path]
    people: int
    seed: int
    rng: random.Random

    def own(self, party: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of ``party``'s own database, as that party reads them (never the other's)."""
        with closing(sqlite3.connect(f"file:{self.files[party]}?mode=ro", uri=True)) as db:
            return db.execute(query, params).fetchall()


def _request(clause: str, **kw: Any) -> Request:
    base: dict[str, Any] = {
        "requester": REELIX,
        "agreement": PARTNERSHIP,
        "clause": clause,
        "operation": Operation.READ,
        "purpose": "functional.service",
        "categories": frozenset({PRIVATE}),
        "at": DEMO_AT,
        "subjects": Subjects(),
    }
    base.update(kw)
    return Request(**base)


def _chirp(i: int) -> str:
    return f"c{i:07d}"


def _reelix(i: int) -> str:
    return f"r{i:07d}"


# -- running exchanges -----------------------------------------------------------------------------


class _Runner:
    """Runs a flow's exchanges through the gateway and tallies them into its result."""

    def __init__(self, world: _World, progress: Progress) -> None:
        self.world = world
        self.progress = progress

    @contextmanager
    def flow(
        self, result: FlowResult, total: int
    ) -> Iterator[Callable[[Exchange], Release | None]]:
        ledger = self.world.accord.ledger
        before = ledger.head().size
        task = self.progress.add_task(result.name, total=max(total, 1))

        def run(exchange: Exchange) -> Release | None:
            try:
                return self._one(result, exchange)
            finally:
                self.progress.advance(task)

        try:
            yield run
        finally:
            self.progress.update(task, completed=max(total, 1))
            result.entries = ledger.head().size - before

    def _one(self, result: FlowResult, exchange: Exchange) -> Release | None:
        result.exchanges += 1
        try:
            release = self.world.gateway.exchange(exchange)
        except Refused as refused:
            result.refused += 1
            decision = refused.decision
            for rule in decision.rules:
                result.refusals[rule] += 1
                result.reasons.setdefault(rule, decision.reason.removeprefix("Refused: "))
            return None
        except AccordError as error:
            # Refused by the gateway before any data moved (a bulk read dressed as a person's
            # own, say): logged by the gateway as a refusal of its own.
            result.refused += 1
            result.refusals["gateway:error"] += 1
            result.reasons.setdefault("gateway:error", error.message)
            return None
        result.allowed += 1
        result.people += release.people
        result.records += len(release.rows)
        result.written += release.written
        for rule, n in release.withheld.items():
            result.kept_out[rule] = result.kept_out.get(rule, 0) + n
            filt = release.decision.filter
            if filt is not None:
                result.reasons.setdefault(rule, filt.reason_for(rule))
        return release

    def explain(self, result: FlowResult, request: Request, *, everyone: bool = False) -> None:
        """Count whom the request's per-person filter lets through and keeps out, by rule.

        With ``everyone``, over all the people the clause looks at rather than those the request
        named (a flow each person starts for themselves is judged person by person).
        """
        if not result.allowed:
            return
        decision = self.world.accord.policy().decide(request)
        f = decision.filter
        if not decision.allowed or f is None:
            return
        if everyone:
            f = replace(f, subjects=None)
        with self.world.accord.session() as s:
            result.admitted = len(filter_sql.allowed_people(s, f))
            withheld = filter_sql.refusals(s, f)
            result.considered = (
                len(f.subjects)
                if f.subjects is not None
                else PeopleRepository(s).count(f.controller)
            )
        result.kept_out = {rule: n for rule, n in withheld.items() if n}
        for rule in result.kept_out:
            result.reasons.setdefault(rule, f.reason_for(rule))


# -- the flows ---------------------------------------------------------------------------------


def _sample(rng: random.Random, population: list[int], k: int) -> list[int]:
    return sorted(rng.sample(population, min(k, len(population))))


def _account_link(w: _World, run: _Runner) -> FlowResult:
    r = FlowResult(
        "account-link",
        "Account linking, made by the person",
        PARTNERSHIP,
        "account-link",
        REELIX,
        CHIRP,
        ("user.account.linked",),
        "essential.service.authentication",
    )
    links = linked(w.people, seed=w.seed)
    members = _sample(w.rng, [i for i in range(w.people) if links[i]], ACTORS["account-link"])

    def read(i: int) -> Request:
        return _request(
            "account-link",
            requester=CHIRP,
            purpose="essential.service.authentication",
            categories=frozenset({"user.account.linked"}),
            subjects=Subjects(SubjectsKind.PEOPLE, people=frozenset({_reelix(i)})),
        )

    with run.flow(r, len(members)) as exchange:
        for i in members:
            exchange(Exchange(read(i), w.tokens[CHIRP], "linked_accounts"))
    return r


def _friend_picker(w: _World, run: _Runner) -> tuple[FlowResult, dict[int, list[str]]]:
    r = FlowResult(
        "friend-picker",
        "Friend picker: only friends who agreed to be shown",
        PARTNERSHIP,
        "friend-picker",
        CHIRP,
        REELIX,
        ("user.social",),
        "functional.service",
    )
    askers = _sample(w.rng, list(range(w.people)), ACTORS["friend-picker"])
    shown: dict[int, list[str]] = {}

    def pick(i: int) -> Request:
        return _request(
            "friend-picker",
            categories=frozenset({"user.social"}),
            subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor=_chirp(i)),
            on_behalf_of=_chirp(i),
        )

    with run.flow(r, len(askers)) as exchange:
        for i in askers:
            where = {"person_id": _chirp(i)}
            release = exchange(Exchange(pick(i), w.tokens[REELIX], "friendships", where=where))
            if release is not None:
                shown[i] = sorted(str(friend) for (friend,) in release.rows)
    run.explain(r, pick(askers[0] if askers else 0))
    return r, shown


def _message_sync(w: _World, run: _Runner) -> FlowResult:
    r = FlowResult(
        "message-sync",
        "Message display and sync: threads where every participant agreed",
        PARTNERSHIP,
        "message-sync",
        CHIRP,
        REELIX,
        (PRIVATE,),
        "functional.service",
    )
    askers = _sample(w.rng, list(range(w.people)), ACTORS["message-sync"])

    def sync(i: int) -> Request:
        return _request(
            "message-sync",
            subjects=Subjects(SubjectsKind.THREADS_OF, anchor=_chirp(i)),
            on_behalf_of=_chirp(i),
        )

    with run.flow(r, len(askers)) as exchange:
        for i in askers:
            exchange(Exchange(sync(i), w.tokens[REELIX], "messages"))
    run.explain(r, sync(askers[0] if askers else 0))
    return r


def _send(w: _World, run: _Runner, shown: Mapping[int, list[str]]) -> FlowResult:
    """Each sender recommends a title to a friend the picker showed them.

    A friend who linked accounts gets it inside Reelix (nothing crosses); anyone else as a Chirp
    message posted on the sender's behalf, into the 1:1 thread Chirp finds for the two of them.
    """
    r = FlowResult(
        "send-recommendation",
        "Private recommendation to a friend: in Reelix, else as a Chirp message",
        PARTNERSHIP,
        "send-recommendation",
        CHIRP,
        REELIX,
        (PRIVATE,),
        "functional.service",
    )
    links = linked(w.people, seed=w.seed)
    senders = [i for i, friends in sorted(shown.items()) if friends][: ACTORS["send"]]

    def send(i: int) -> Request:
        return _request(
            "send-recommendation",
            operation=Operation.WRITE,
            subjects=Subjects(SubjectsKind.PEOPLE, people=frozenset({_chirp(i)})),
            on_behalf_of=_chirp(i),
        )

    with run.flow(r, len(senders)) as exchange:
        for i in senders:
            friend = w.rng.choice(shown[i])
            if links[int(friend[1:])]:
                r.delivered_in_reelix += 1
                continue
            # Chirp delivers into the 1:1 thread of the two, found in its own database; a friend
            # with none is sent to in a thread the sender already shares with a shown friend.
            threads = w.own(
                CHIRP,
                "SELECT a.thread_id, b.person_id FROM thread_participants a "
                "JOIN thread_participants b ON a.thread_id = b.thread_id "
                "JOIN threads t ON t.thread_id = a.thread_id "
                "WHERE a.person_id = ? AND b.person_id != a.person_id AND t.kind = '1:1' "
                "ORDER BY a.thread_id",
                _chirp(i),
            )
            friends = set(shown[i])
            ours = [t for t, other in threads if other == friend] or [
                t for t, other in threads if other in friends
            ]
            if not ours:
                r.undeliverable += 1
                continue
            title = TITLES[w.rng.randrange(len(TITLES))]
            row = {
                "thread_id": ours[0],
                "body": f"I think you would like {title} on Reelix",
                "sender_id": _chirp(i),
                "sent_at": DEMO_AT.isoformat(),
            }
            exchange(Exchange(send(i), w.tokens[REELIX], "messages", rows=[row]))
    run.explain(r, send(senders[0] if senders else 0), everyone=True)
    return r


def _watch_activity(w: _World, run: _Runner) -> list[FlowResult]:
    feed = _request("watch-activity", requester=CHIRP, categories=frozenset({WATCHED}))
    automatic = FlowResult(
        "watch-activity",
        "Watch activity to the Chirp feed (automatic)",
        PARTNERSHIP,
        "watch-activity",
        REELIX,
        CHIRP,
        (WATCHED,),
        "functional.service",
    )
    with run.flow(automatic, 1) as exchange:
        exchange(Exchange(feed, w.tokens[CHIRP], "watch_events"))
    run.explain(automatic, feed)
    per_title = FlowResult(
        "watch-activity-title",
        "Watch activity to the Chirp feed, title by title",
        PARTNERSHIP,
        "watch-activity",
        REELIX,
        CHIRP,
        (WATCHED,),
        "functional.service",
    )
    titles = TITLES[:POPULAR_TITLES]
    with run.flow(per_title, len(titles)) as exchange:
        for title in titles:
            one = _request(
                "watch-activity", requester=CHIRP, categories=frozenset({WATCHED}), title=title
            )
            exchange(Exchange(one, w.tokens[CHIRP], "watch_events", where={"title_id": title}))
    run.explain(
        per_title,
        _request(
            "watch-activity", requester=CHIRP, categories=frozenset({WATCHED}), title=titles[0]
        ),
    )
    return [automatic, per_title]


REPORTS: dict[str, tuple[tuple[str, ...], float]] = {
    "totals by interface": (("interface",), 0.3),
    "daily totals": (("day(sent_at)",), 0.15),
    "daily by interface, surface and variant": (
        ("day(sent_at)", "interface", "surface", "variant"),
        0.15,
    ),
}
"""Each report's grouping, and the epsilon it spends of the clause's privacy budget of 1 (and of
each sender's): 0.6 in all, leaving the rest for the API's own reports."""


def _report(w: _World, run: _Runner) -> FlowResult:
    r = FlowResult(
        "recommendation-report",
        "Report every two weeks: sends and clicks, noised (aggregate, k = 50, ε 0.6)",
        PARTNERSHIP,
        "recommendation-report",
        REELIX,
        CHIRP,
        ("user.behavior",),
        REPORTING,
    )
    request = _request(
        "recommendation-report",
        requester=CHIRP,
        purpose=REPORTING,
        categories=frozenset({"user.behavior"}),
    )
    measures = {"sends": "count", "clicks": "count(clicked_at)"}
    shown = ""
    with run.flow(r, len(REPORTS)) as exchange:
        for name, (group_by, epsilon) in REPORTS.items():
            release = exchange(
                Exchange(
                    request,
                    w.tokens[CHIRP],
                    "recommendations",
                    group_by=group_by,
                    measures=measures,
                    epsilon=epsilon,
                )
            )
            if release is None or release.noise is None:
                continue
            r.epsilon += release.noise.epsilon
            if release.rows and not r.sample:
                r.columns = release.columns
                r.sample = sorted(release.rows)
                shown = f"Shown: the {name}, {release.noise.description}."
    if r.epsilon:
        r.noise = (
            f"The figures are noisy: the {len(REPORTS)} reports spent epsilon {r.epsilon:.2g} of "
            "each sender's privacy budget and of the clause's. "
            + (shown or "No group's noisy count of senders reached the threshold.")
        )
    return r


def _segments(w: _World, run: _Runner) -> FlowResult:
    r = FlowResult(
        "interest-segments",
        "Interest segments from watch history, for ad targeting",
        PARTNERSHIP,
        "interest-segments",
        REELIX,
        CHIRP,
        (WATCHED,),
        TARGETED,
    )
    request = _request(
        "interest-segments", requester=CHIRP, purpose=TARGETED, categories=frozenset({WATCHED})
    )
    with run.flow(r, 1) as exchange:
        exchange(Exchange(request, w.tokens[CHIRP], "watch_events"))
    run.explain(r, request)
    return r


def _erasure(w: _World, run: _Runner) -> tuple[FlowResult, ErasureShown | None]:
    """Erase a US member whose viewings the automatic feed released, then read the feed again.

    The member is one with a VPPA consent in force (so the feed did release them); the erasure
    withdraws it, suppresses them, tells Chirp (by the Chirp account they linked, if any), and
    shreds their ledger key. The read after it must release nothing about them and tie no entry
    to them again; the auditor's replay checks it too.
    """
    after = FlowResult(
        "watch-activity-after-erasure",
        "Watch activity to the Chirp feed, after a member's erasure",
        PARTNERSHIP,
        "watch-activity",
        REELIX,
        CHIRP,
        (WATCHED,),
        "functional.service",
    )
    viewers = {member for (member,) in w.own(REELIX, "SELECT DISTINCT member_id FROM watch_events")}
    oldest = years_before(DEMO_AT, 2)
    chosen = next(
        (
            c.person
            for c in w.population.consents
            if c.controller == REELIX
            and c.recipient == CHIRP
            and c.person in viewers
            and c.distinct_and_separate
            and c.scope is Scope.ONGOING
            and not c.excluded_titles
            and c.in_force_at(DEMO_AT)
            and c.given_at > oldest
            and WATCHED in c.categories
            and "functional.service" in c.purposes
        ),
        None,
    )
    feed = _request("watch-activity", requester=CHIRP, categories=frozenset({WATCHED}))
    if chosen is None:  # a population too small to have such a member
        return after, None
    linked = w.own(
        REELIX, "SELECT chirp_person_id FROM linked_accounts WHERE member_id = ?", chosen
    )
    known_as = {CHIRP: str(linked[0][0])} if linked else {}
    done = erase(w.accord, REELIX, chosen, known_as=known_as, at=DEMO_AT)
    released: Release | None = None
    with run.flow(after, 1) as exchange:
        released = exchange(Exchange(feed, w.tokens[CHIRP], "watch_events"))
    run.explain(after, feed)
    shown = ErasureShown(
        REELIX,
        chosen,
        done,
        records_after=len(released.rows) if released is not None else 0,
        people_after=released.people if released is not None else 0,
        key_again=w.accord.ledger.key_of(person_ref(REELIX, chosen)) is not None,
    )
    return after, shown


def _sample_person(w: _World, erased: ErasureShown | None) -> str:
    """A Reelix member the feed released (``reelix/ID``), not the one erased: someone with a
    release about them in the ledger, for the report's ``accord ledger prove`` example."""
    gone = erased.person if erased is not None else None
    members = sorted({c.person for c in w.population.consents if c.controller == REELIX} - {gone})
    fallback = None
    for member in members[:500]:
        kinds = {
            leaf.get("kind") for leaf in w.accord.ledger.leaves_about(person_ref(REELIX, member))
        }
        if "release" in kinds:
            return person_ref(REELIX, member)
        if fallback is None and kinds:
            fallback = person_ref(REELIX, member)
    return fallback or person_ref(REELIX, members[0] if members else "r0000001")


def next_steps(
    folder: DataFolder, person: str, *, ads: bool = False
) -> tuple[tuple[str, str], ...]:
    """What to run after the demo, verbatim: each command finds the demo's data folder."""
    where = "" if folder.path == DataFolder.chosen().path else f" --data-dir {folder.path}"
    money = (
        (
            (
                f"accord ads spend{where}",
                "each advertiser's spend beside the data access its party holds, per year",
            ),
        )
        if ads
        else ()
    )
    return (
        (f"accord ledger verify{where}", "recompute every leaf, node and signed checkpoint"),
        (
            f"accord ledger prove --person {person}{where} > proof.json",
            "every entry about one person, with inclusion proofs under the signed checkpoint",
        ),
        (
            "python src/accord/ledger/verify_proof.py proof.json",
            "check those proofs with nothing but Python's standard library",
        ),
        (f"accord ledger show{where}", "the latest entries and checkpoint"),
        (f"accord audit{where}", "the auditor's replay of every release against the law"),
        (
            f"accord cleanroom report{where}",
            "the fortnightly recommendation report, run in the clean room",
        ),
        *money,
        (f"accord serve{where}", "the partner API on http://127.0.0.1:8000 (docs at /docs)"),
    )


def _abuses(w: _World, run: _Runner) -> list[FlowResult]:
    """The requests of the filings that Accord refuses, each logged with its reasons."""
    asker = _chirp(0)
    us_without_vppa = _without_vppa(w, limit=100)
    cases: list[tuple[str, str, Exchange]] = []

    def case(key: str, name: str, r: Request, collection: str, **kw: Any) -> None:
        cases.append((key, name, Exchange(r, w.tokens[r.requester], collection, **kw)))

    case(
        "abuse-bulk-inbox",
        "ABUSE: read every inbox in bulk (the Inbox API)",
        _request("message-sync"),
        "messages",
    )
    case(
        "abuse-titan",
        "ABUSE: all friends, consenting or not, under the unreviewed Titan whitelist",
        _request(
            "all-friends",
            agreement=TITAN,
            purpose="marketing.advertising",
            categories=frozenset({"user.social", "user.name"}),
            subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor=asker),
        ),
        "friendships",
        where={"person_id": asker},
    )
    case(
        "abuse-friends-unpinned",
        "ABUSE: friend lists read on nobody's behalf",
        _request(
            "friend-picker",
            categories=frozenset({"user.social"}),
            subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor=asker),
        ),
        "friendships",
    )
    case(
        "abuse-vppa",
        "ABUSE: watch history of US members without VPPA consent",
        _request(
            "watch-activity",
            requester=CHIRP,
            categories=frozenset({WATCHED}),
            subjects=Subjects(SubjectsKind.PEOPLE, people=frozenset(us_without_vppa)),
        ),
        "watch_events",
    )
    case(
        "abuse-ads-purpose",
        "ABUSE: watch history for ads under the feed clause",
        _request(
            "watch-activity", requester=CHIRP, purpose=TARGETED, categories=frozenset({WATCHED})
        ),
        "watch_events",
    )
    case(
        "abuse-secret",
        "ABUSE: a confidential agreement nobody registered or published",
        _request("inbox", agreement="extended-api-2013", on_behalf_of=asker),
        "messages",
    )
    case(
        "abuse-fields",
        "ABUSE: message attachments, beyond the clause's fields",
        _request(
            "message-sync",
            fields=frozenset({"messages.body", "messages.attachments"}),
            subjects=Subjects(SubjectsKind.THREADS_OF, anchor=asker),
            on_behalf_of=asker,
        ),
        "messages",
    )
    results = []
    for key, name, exchange in cases:
        request = exchange.request
        provider = CHIRP if request.requester == REELIX else REELIX
        r = FlowResult(
            key,
            name,
            request.agreement,
            request.clause,
            provider,
            request.requester,
            tuple(sorted(request.categories)),
            request.purpose,
            abuse=True,
        )
        with run.flow(r, 1) as go:
            go(exchange)
        run.explain(r, request)
        results.append(r)
    return results


def _without_vppa(w: _World, *, limit: int) -> list[str]:
    """Reelix members in the US who gave Reelix no VPPA-grade consent to share with Chirp."""
    consenting = {
        c.person
        for c in w.population.consents
        if c.controller == REELIX and WATCHED in c.categories and c.distinct_and_separate
    }
    us = [
        p.id
        for p in w.population.people
        if p.party == REELIX and p.jurisdiction.startswith("US") and p.id not in consenting
    ]
    return us[:limit]


# -- putting it together -----------------------------------------------------------------------


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _flows(console: Console, world: _World) -> tuple[list[FlowResult], ErasureShown | None]:
    """Every flow of the partnership, every abuse, then the erasure and the feed read again."""
    with _progress(console) as bars:
        run = _Runner(world, bars)
        results = [_account_link(world, run)]
        picker, shown = _friend_picker(world, run)
        results += [picker, _message_sync(world, run), _send(world, run, shown)]
        results += _watch_activity(world, run)
        results += [_report(world, run), _segments(world, run)]
        results += _abuses(world, run)
        after, erased = _erasure(world, run)
        results.append(after)
    return results, erased


def _write_parties(console: Console, folder: DataFolder, *, people: int, seed: int) -> Written:
    """A folder made ready for the scenario, and both parties' databases written in it."""
    prepare(folder)
    folder.mark(people=people, seed=seed, ready=False, made_by="demo")
    with _progress(console) as bars:

        def phase(description: str, total: int, /) -> Callable[[int], None]:
            task = bars.add_task(description, total=total)
            return lambda steps: bars.advance(task, steps)

        return write_databases(folder.parties, people=people, seed=seed, at=DEMO_AT, report=phase)


def run_demo(
    console: Console,
    *,
    people: int,
    seed: int,
    data_dir: Path,
    report: Path | None = None,
    replay: bool | None = None,
    ads: bool | None = None,
) -> DemoResult:
    """Run the demo in a fresh ``data_dir``; write the HTML report to ``report`` if given.

    ``replay`` runs the auditor's replay at the end; by default (``None``) only up to
    :data:`AUDIT_BY_DEFAULT_UP_TO` people (its plain evaluator takes minutes beyond).
    ``ads`` runs Chirp's ad season before the flows (:func:`_ad_season`); by default from
    :data:`ADS_BY_DEFAULT_FROM` people (fewer cannot pay for the smallest campaigns' clicks) up
    to :data:`ADS_BY_DEFAULT_UP_TO`.
    """
    if people < 1:
        raise InvalidInput("the demo needs at least one person")
    if report is not None and not report.parent.is_dir():
        raise InvalidInput(f"cannot write the report to {report}: {report.parent} is not a folder")
    with_ads = ADS_BY_DEFAULT_FROM <= people <= ADS_BY_DEFAULT_UP_TO if ads is None else ads
    if with_ads:
        _check_ad_budgets(people)
    folder = DataFolder(data_dir)
    written = _write_parties(console, folder, people=people, seed=seed)
    files = {CHIRP: written.chirp, REELIX: written.reelix}
    datasets = resources.files("accord") / "scenario" / "datasets"
    engines = {party: make_engine(f"sqlite:///{path}") for party, path in files.items()}
    try:
        with Accord.open(data_dir=folder.path) as accord:
            register_agreements(accord, DEMO_AT)
            population = generate(people, seed=seed, at=DEMO_AT)
            with _progress(console) as bars:
                task = bars.add_task(
                    "consents into the store and ledger", total=len(population.consents)
                )
                load_population(accord, population, lambda n: bars.advance(task, n))
            # The scenario is complete: the other commands may use the folder from here on.
            folder.mark(people=people, seed=seed, ready=True, made_by="demo")
            console.print(
                f"{people:,} people at each party, {len(population.consents):,} consents, "
                f"{len(population.opt_outs):,} opt-outs of sale/sharing"
            )
            season = (
                _ad_season(console, accord, folder, population, seed=seed) if with_ads else None
            )
            sources = {
                party: Source(engines[party], load(str(datasets / f"{party}.yaml")))
                for party in (CHIRP, REELIX)
            }
            keyring = Keyring()
            tokens = {party: keyring.issue(party) for party in (CHIRP, REELIX)}
            world = _World(
                accord,
                Gateway(accord, sources, keyring),
                tokens,
                population,
                files,
                people,
                seed,
                random.Random(f"{seed}:demo"),
            )
            results, erased = _flows(console, world)
            # Reelix's data in Chirp's ads, before the money is set beside the data access, so
            # that the table is what `accord ads spend` prints from the folder afterwards.
            partner = _partner_data(console, world) if season is not None else None
            shown_ads = (
                AdsShown(season, spend_beside_access(accord.engine, CHIRP), DEMO_AT.date())
                if season is not None
                else None
            )
            audit = verify_ledger(accord.ledger)
            if not audit.ok:
                raise LedgerIntegrityError(
                    "the ledger does not verify: " + "; ".join(p.message for p in audit.problems)
                )
            checkpoint = accord.ledger.checkpoint()
            replayed = (
                _replay(console, accord, engines, sources)
                if (people <= AUDIT_BY_DEFAULT_UP_TO if replay is None else replay)
                else None
            )
            result = DemoResult(
                people=people,
                seed=seed,
                consents=len(population.consents),
                opt_outs=len(population.opt_outs),
                flows=results,
                ledger_size=audit.size,
                checkpoint=checkpoint.note,
                verifier_key=_verifier_key(accord),
                rows=written.rows,
                erasure=erased,
                audit=replayed,
                next_steps=next_steps(
                    folder, _sample_person(world, erased), ads=shown_ads is not None
                ),
                ads=shown_ads,
                partner=partner,
            )
    finally:
        for engine in engines.values():
            dispose(engine)
    show(console, result)
    if report is not None:
        write_report(result, report)
        console.print(f"report written to [bold]{escape(str(report))}[/]")
    return result


AD_SEASON_ENDS = DEMO_AT.date() - timedelta(days=1)
"""The last day of the demo's ad season: the day before the flows, so that every ``ad_spend``
entry (written as its day closes) comes before them in the ledger, in the same year."""


def _check_ad_budgets(people: int) -> None:
    """Refuse, before anything is written, a population too small for the season's budgets."""
    windows = sample_windows(AD_SEASON_ENDS, DEMO_YEARS, DEMO_DAYS)
    try:
        season_campaigns(people, start=windows[0][0], years=DEMO_YEARS, windows=windows)
    except InvalidInput as error:
        raise InvalidInput(
            f"{error.message} (the ad season runs by default from {ADS_BY_DEFAULT_FROM:,} "
            "people), or leave it out with --no-ads",
            where="--people",
        ) from None


def _ad_season(
    console: Console,
    accord: Accord,
    folder: DataFolder,
    population: Population,
    *,
    seed: int,
) -> SampledSeason:
    """Chirp's ad season, before the flows: the same week of each of the filings' three years,
    each year's budgets scaled to the week; every charge recorded, each campaign's day in the
    ledger, each month invoiced and reconciled."""
    with _progress(console) as bars:

        def phase(description: str, total: int, /) -> Callable[[int], None]:
            task = bars.add_task(description, total=total)
            return lambda steps: bars.advance(task, steps)

        season = run_sampled_season(
            accord, folder.parties, population, seed=seed, last_day=AD_SEASON_ENDS, phase=phase
        )
    done = season.result
    console.print(
        f"ad season: {season.days} days in each of {len(season.windows)} years "
        f"({', '.join(f'{b:%d %b} to {e - timedelta(days=1):%d %b %Y}' for b, e in season.windows)}"
        f"): {done.requests:,} ad requests, {done.impressions:,} impressions, "
        f"{done.clicks:,} clicks; {done.ledger_entries:,} ad_spend ledger entries, "
        f"{season.invoices} invoices"
        + ("" if not season.unreconciled else f", [red]{len(season.unreconciled)} unreconciled[/]")
    )
    return season


def _partner_data(console: Console, world: _World) -> PartnerShown:
    """Reelix's data in Chirp's ads, after the flows: a genre's viewers as an audience, rebuilt
    after some withdraw, its lookalike and a campaign's lift; then the click model trained with
    partner features, one person's withdrawal forgotten, and what the data bought. The minimum
    audience is the agreement's 100 people from 10,000 people on, a hundredth of the population
    below (so that a small demo still shows an audience built and rebuilt). It runs now, as the
    erasure does: the partner's side of each match decides and logs at its own clock, and the
    withdrawals must come after the releases made before them, for the auditor's replay."""
    with _progress(console) as bars:
        bars.add_task("Reelix's data in Chirp's ads: audiences, lift, click model", total=None)
        ads = run_partner_ads(
            world.accord,
            world.files[CHIRP],
            world.files[REELIX],
            min_size=min(MIN_AUDIENCE, max(world.people // 100, 10)),
            seed=world.seed,
        )
        people = [r[0] for r in world.own(CHIRP, "SELECT person_id FROM people ORDER BY person_id")]
        return run_partner_model(world.accord, people, ads, seed=world.seed)


def _replay(
    console: Console, accord: Accord, engines: Mapping[str, Engine], sources: Mapping[str, Source]
) -> AuditReport:
    """The auditor's replay of every release in the ledger (``accord audit``)."""
    console.print("the auditor's replay: every release judged again …")
    return replay_releases(
        accord.engine,
        accord.sessions,
        {party: PartyDatabase(engines[party], s.dataset) for party, s in sources.items()},
    )


def show(console: Console, result: DemoResult) -> None:
    """The summary table, what each rule means, and the verified ledger's checkpoint."""
    table = Table(title="Chirp–Reelix: every flow through the one door", show_lines=True)
    table.add_column("flow", ratio=3)
    table.add_column("exchanges\nallowed / refused", justify="right")
    table.add_column("people let through\n(of those the clause looks at)", justify="right")
    table.add_column("people kept out, by rule", ratio=3, overflow="fold")
    table.add_column("records released", justify="right")
    table.add_column("ledger entries", justify="right")
    reasons: dict[str, str] = {}
    for f in result.flows:
        reasons.update(f.reasons)
        name = f"[bold red]{escape(f.name)}[/]" if f.abuse else escape(f.name)
        if f.admitted is not None and f.considered is not None:
            people = f"{f.admitted:,} of {f.considered:,}"
        else:
            people = "—"
        lines = [f"{n:,} × {escape(rule)}" for rule, n in sorted(f.kept_out.items(), key=_most)]
        lines += [
            f"[red]refused: {escape(rule)}[/]" for rule in sorted(f.refusals) if f.refusals[rule]
        ]
        moved = f"{f.records:,}" + (f" + {f.written:,} written" if f.written else "")
        if f.epsilon:
            moved += f"\n(noised: ε {f.epsilon:.2g} spent)"
        if f.delivered_in_reelix:
            moved += f"\n({f.delivered_in_reelix:,} delivered inside Reelix)"
        verdict = f"[green]{f.allowed:,}[/] / [red]{f.refused:,}[/]"
        table.add_row(name, verdict, people, "\n".join(lines) or "—", moved, f"{f.entries:,}")
    console.print(table)
    legend = Table(title="What each rule means", show_lines=False)
    legend.add_column("rule", no_wrap=True)
    legend.add_column("a person is kept out, or a request refused, because …")
    for rule, reason in sorted(reasons.items()):
        legend.add_row(escape(rule), escape(reason))
    console.print(legend)
    _show_ads_and_partner(console, result)
    console.print(
        Panel(
            escape(result.checkpoint),
            title=f"[green]ledger verified: {result.ledger_size:,} entries; signed checkpoint",
        )
    )
    if result.erasure is not None:
        show_erasure(console, result.erasure)
    if result.audit is not None:
        show_audit(console, result.audit)
    else:
        console.print(
            "the auditor's replay was not run (by default only up to "
            f"{AUDIT_BY_DEFAULT_UP_TO:,} people): `accord demo --audit` or `accord audit` runs it"
        )
    if result.next_steps:
        steps = Table(title="Check it yourself", show_header=False, box=None)
        steps.add_column(style="bold", no_wrap=True)
        steps.add_column()
        for command, what in result.next_steps:
            steps.add_row(escape(command), escape(what))
        console.print(steps)


def _show_ads_and_partner(console: Console, result: DemoResult) -> None:
    """The ad season and the partner's data in ads, or why they were not run."""
    if result.ads is None:
        console.print(
            f"Chirp's ad season was not run (by default only from {ADS_BY_DEFAULT_FROM:,} to "
            f"{ADS_BY_DEFAULT_UP_TO:,} people): `accord demo --ads` runs it"
        )
        return
    show_ads(console, result.ads)
    if result.partner is not None:
        show_partner(console, result.partner)


def show_ads(console: Console, ads: AdsShown) -> None:
    """Each advertiser's money beside its party's data access, and how the season was sampled."""
    for table in spend_tables(ads.money, console.width):
        console.print(table)
    s = ads.season
    console.print(
        f"spend on {s.days} days of each year, each year's budgets scaled to those days: a "
        f"year's spend is about {s.scale:.0f} times it; the exchanges all happened on "
        f"{ads.flows_on:%d %B %Y}, in the season's last year"
    )
    for line in ledger_lines(ads.money):
        console.print(line)


def show_partner(console: Console, p: PartnerShown) -> None:
    """Reelix's data in Chirp's ads in a few lines: audiences, lift, cards, value and cost."""
    a = p.ads
    lines = [
        (
            f"audience of Reelix's {escape(a.genre)} viewers: {_size(a.audience)} of "
            f"{a.viewers:,} viewers matched under consent; {a.withdrawn} withdrew, rebuilt: "
            f"{_size(a.rebuilt)}; lookalike {_size(a.lookalike)}"
            + (f" (recall of held-out seed {a.recall:.0%})" if a.recall is not None else "")
        ),
        (
            f"conversion lift {a.lift.lift:+.2%} (95% interval {a.lift.low:+.2%} to "
            f"{a.lift.high:+.2%}, planted {a.planted:+.2%}), ε = {a.lift.epsilon:g}"
            if a.lift is not None
            else "conversion lift: refused (a group under 50 people or a budget spent)"
        ),
    ]
    for name, c in (("click model", p.first), ("after a withdrawal", p.second)):
        card = c.card
        lines.append(
            f"{name} {card.model}: AUC {c.auc:.4f}, calibration error {c.ece:.4f}, "
            f"{card.people:,} people ({card.partner_people:,} with partner features)"
            + (f", replaces {card.replaces}" if card.replaces else "")
            + (f", shard {', '.join(map(str, card.retrained))} of {card.shards} retrained "
               f"({p.forget_ratio:.0%} of the full training's CPU time)" if card.retrained else "")
            + f"; ledger entry {c.index:,}"
        )  # fmt: skip
    lines.append(
        f"what the data bought: revenue ${show_money(p.revenue_with)} with partner features vs "
        f"${show_money(p.revenue_without)} without ({p.revenue_lift:+.1%}), AUC "
        f"{p.auc_with:.4f} vs {p.auc_without:.4f}; its cost: {p.first.card.partner_people:,} "
        f"people's partner data, ε = {p.epsilon_each:g} from {p.budget_people:,} people's privacy "
        "budgets"
    )
    verdict = "[green]proven absent[/]" if p.proven_absent else "[red]still in it[/]"
    console.print(
        Panel(
            "\n".join(lines),
            title=f"Reelix's data in Chirp's ads; the withdrawn person's partner rows: {verdict}",
        )
    )


def _size(n: int | None) -> str:
    return "refused as too small" if n is None else f"{n:,}"


def show_erasure(console: Console, e: ErasureShown) -> None:
    """What erasing one member did, and what the feed released after it."""
    done = e.done
    deleted = sum(done.deleted.values())
    lines = [
        f"{_count(done.withdrawn, 'consent')} withdrawn; {_count(deleted, 'row')} about them "
        "deleted from the store"
        + ("; the proof of their past consent sealed under their key" if done.sealed else ""),
        (
            f"told: {', '.join(done.recipients) or 'no recipient'} (GDPR Art. 19); "
            f"{_count(done.entries_forgotten, 'ledger entry', 'ledger entries')} no longer tied "
            "to them (key destroyed)"
        ),
        f"the feed read again: {e.records_after:,} records about {e.people_after:,} people, "
        + (
            "[red]and the ledger tied them to a key again[/]"
            if e.key_again
            else "none about them, and no entry tied to them again"
        ),
    ]
    console.print(
        Panel(
            "\n".join(lines),
            title=f"[green]erasure: {escape(e.party)}/{escape(e.person)}",
        )
    )


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _most(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _verifier_key(accord: Accord) -> str:
    signer = accord.ledger.signer
    return signer.verifier.vkey if signer is not None else ""
