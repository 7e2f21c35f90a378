"""The flows of the filings through the one door, on a generated scenario.

A small population is generated twice from one seed: the parties' databases
(:func:`~accord.scenario.generate.write_databases`) and the same people's consents and opt-outs
(:func:`~accord.scenario.population.generate`), loaded into an Accord store. Each flow runs
through :meth:`Gateway.exchange` and is compared with a computation that reads the parties'
SQLite files directly and judges consent in Python from the records themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from accord import agreements as ag
from accord.consent import Operation, PersonFacts
from accord.errors import InvalidInput
from accord.filters import PersonFilter
from accord.gateway import Exchange, Gateway, Keyring, Refused, Release
from accord.law.friends import RELATIONS_RULE_ID
from accord.ledger.audit import verify_ledger
from accord.pets.budget import BUDGET_RULE, DEFAULT_EPSILON
from accord.requests import Request, Subjects, SubjectsKind
from accord.scenario.generate import write_databases
from accord.scenario.population import CHIRP, REELIX, Population, generate
from accord.service import Accord
from accord.sources import Source, load
from accord.store.engine import make_engine
from builders import for_title

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PEOPLE, SEED = 1_000, 23
EXAMPLES = resources.files("accord") / "examples"
DATASETS = resources.files("accord") / "scenario" / "datasets"
WATCHED = "user.behavior.media_consumption"
TARGETED = "marketing.advertising.third_party.targeted"


@dataclass
class Flows:
    """The store, the gateway, the population, and the parties' files for direct reading."""

    accord: Accord
    gateway: Gateway
    tokens: dict[str, str]
    population: Population
    files: dict[str, Path]

    def sql(self, party: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.files[party]) as db:
            return db.execute(query, params).fetchall()

    def reference(self, f: PersonFilter) -> frozenset[str]:
        """Whom ``f`` lets through, judged in Python from the population's own records."""
        p = self.population
        return f.allowed(
            PersonFacts.of(person, p.consents, p.opt_outs)
            for person in p.people
            if person.party == f.controller
        )

    def decided(self, r: Request) -> PersonFilter:
        f = self.accord.policy().decide(r).filter
        assert f is not None
        return f


def request(clause: str, **overrides: Any) -> Request:
    fields: dict[str, Any] = {
        "requester": REELIX,
        "agreement": "chirp-reelix",
        "clause": clause,
        "operation": Operation.READ,
        "purpose": "functional.service",
        "categories": frozenset({"user.content.private"}),
        "at": AT,
        "subjects": Subjects(),
    }
    fields.update(overrides)
    return Request(**fields)


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flows]:
    folder = tmp_path_factory.mktemp("flows")
    written = write_databases(folder / "parties", people=PEOPLE, seed=SEED, at=AT, parallel=False)
    population = generate(PEOPLE, seed=SEED, at=AT)
    files = {CHIRP: written.chirp, REELIX: written.reelix}
    engines = {party: make_engine(f"sqlite:///{path}") for party, path in files.items()}
    try:
        with Accord.open(data_dir=folder / "accord") as accord:
            for name in ("chirp-reelix", "chirp-reelix-titan"):
                doc = (EXAMPLES / f"{name}.yaml").read_text()
                accord.register(doc, source=f"{name}.yaml", by="legal")
            accord.review("chirp-reelix", reviewer="Dana", findings="none", approved=True)
            accord.move("chirp-reelix", ag.Status.ACTIVE, by="dpo")
            accord.import_records(population.people, population.consents, population.opt_outs)
            sources = {
                party: Source(engines[party], load(str(DATASETS / f"{party}.yaml")))
                for party in (CHIRP, REELIX)
            }
            keyring = Keyring()
            tokens = {party: keyring.issue(party) for party in (CHIRP, REELIX)}
            yield Flows(accord, Gateway(accord, sources, keyring), tokens, population, files)
            report = verify_ledger(accord.ledger)
            assert report.ok, report
    finally:
        for engine in engines.values():
            engine.dispose()


def busiest(flows: Flows, query: str) -> str:
    """The person the query ranks first (e.g. the one with the most friends)."""
    ((person, _),) = flows.sql(CHIRP, query + " ORDER BY 2 DESC, 1 LIMIT 1")
    return str(person)


def test_friend_picker_shows_only_friends_who_consented(flows: Flows) -> None:
    asker = busiest(flows, "SELECT person_id, count(*) FROM friendships GROUP BY person_id")
    r = request(
        "friend-picker",
        categories=frozenset({"user.social"}),
        subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor=asker),
        on_behalf_of=asker,
    )
    release = flows.gateway.exchange(
        Exchange(r, flows.tokens[REELIX], "friendships", where={"person_id": asker})
    )
    friends = {
        str(f)
        for (f,) in flows.sql(CHIRP, "SELECT friend_id FROM friendships WHERE person_id = ?", asker)
    }
    consenting = friends & flows.reference(flows.decided(r))
    assert release.columns == ("friend_id",)
    assert {str(f) for (f,) in release.rows} == consenting
    assert release.people == len(consenting)
    assert consenting  # some friends said yes, and are shown
    assert consenting < friends  # some friends said no, and are not shown


def test_friend_picker_without_pinning_the_asker_is_refused(flows: Flows) -> None:
    r = request(
        "friend-picker",
        categories=frozenset({"user.social"}),
        subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor="c0000001"),
        on_behalf_of="c0000001",
    )
    # On the person's behalf, but with no condition naming them: every friend list at once.
    with pytest.raises(Refused) as refused:
        flows.gateway.exchange(Exchange(r, flows.tokens[REELIX], "friendships"))
    assert refused.value.decision.rules == (RELATIONS_RULE_ID,)


def sync(asker: str) -> Request:
    return request(
        "message-sync",
        subjects=Subjects(SubjectsKind.THREADS_OF, anchor=asker),
        on_behalf_of=asker,
    )


def test_message_sync_shows_only_threads_where_every_participant_consented(
    flows: Flows,
) -> None:
    allowed = flows.reference(flows.decided(sync("c0000000")))
    members: dict[Any, set[str]] = {}
    for thread, person in flows.sql(CHIRP, "SELECT thread_id, person_id FROM thread_participants"):
        members.setdefault(thread, set()).add(str(person))
    open_threads = {t for t, people in members.items() if people <= allowed}

    sent_by_reelix = {
        t for (t,) in flows.sql(CHIRP, "SELECT thread_id FROM messages WHERE sent_via = 'reelix'")
    }

    written_in_chirp = {
        t for (t,) in flows.sql(CHIRP, "SELECT thread_id FROM messages WHERE sent_via IS NULL")
    }

    def mixed(person: str) -> tuple[int, int, int]:
        theirs = {t for t, people in members.items() if person in people}
        agreed = theirs & open_threads
        return (
            len(agreed & sent_by_reelix),
            len(agreed & written_in_chirp),
            len(theirs - open_threads),
        )

    # One who has threads where everyone agreed and Reelix sent something, threads where everyone
    # agreed with messages written in Chirp itself, and threads where someone did not agree.
    asker = max(sorted(allowed), key=lambda p: min(mixed(p)))
    assert min(mixed(asker)) > 0
    release = flows.gateway.exchange(Exchange(sync(asker), flows.tokens[REELIX], "messages"))
    assert flows.reference(flows.decided(sync(asker))) == allowed
    theirs = {t for t in open_threads if asker in members[t]}
    everything = flows.sql(
        CHIRP, "SELECT message_id, thread_id, body, sent_at, sent_via FROM messages"
    )
    expected = [m[:4] for m in everything if m[1] in theirs and m[4] == "reelix"]
    assert release.columns == ("message_id", "thread_id", "body", "sent_at")
    assert release.rows
    assert sorted(release.rows) == sorted(expected)
    # The rest of those threads — what people wrote in Chirp itself — stays in Chirp.
    assert any(m[1] in theirs and m[4] is None for m in everything)


def test_bulk_inbox_read_is_refused_and_logged(flows: Flows) -> None:
    with pytest.raises(Refused) as refused:
        flows.gateway.exchange(Exchange(request("message-sync"), flows.tokens[REELIX], "messages"))
    assert "law:sca.no-bulk-read" in refused.value.decision.rules
    leaf = flows.accord.ledger.leaf(refused.value.receipt.index).entry()
    assert leaf["allowed"] is False
    assert leaf["people"] == 0


def watch_read(clause: str, purpose: str, **overrides: Any) -> Request:
    return request(
        clause, requester=CHIRP, purpose=purpose, categories=frozenset({WATCHED}), **overrides
    )


def spent(flows: Flows) -> set[str]:
    """The consents for one disclosure that earlier releases relied on (never counted again)."""
    with flows.accord.engine.connect() as conn:
        return set(conn.execute(text("SELECT consent_id FROM consent_uses")).scalars())


def viewings(
    flows: Flows, f: PersonFilter, spent_before: set[str], title: str | None = None
) -> list[Any]:
    """(title, watched_at) of every viewing ``f`` lets go, each judged for its own title on the
    consents not spent before the exchange; of ``title`` only, when given."""
    p = flows.population
    kept = [c for c in p.consents if c.id not in spent_before]
    facts = {
        person.id: PersonFacts.of(person, kept, p.opt_outs)
        for person in p.people
        if person.party == f.controller
    }
    judges: dict[str, PersonFilter] = {}
    out = []
    for m, t, w in flows.sql(REELIX, "SELECT member_id, title_id, watched_at FROM watch_events"):
        if title is not None and t != title:
            continue
        judge = judges.setdefault(t, for_title(f, t))
        if str(m) in facts and judge.admits(facts[str(m)]):
            out.append((t, w))
    return sorted(out)


def test_watch_activity_reaches_chirp_only_with_consent_and_vppa_in_the_us(
    flows: Flows,
) -> None:
    r = watch_read("watch-activity", "functional.service")
    before = spent(flows)
    release = flows.gateway.exchange(Exchange(r, flows.tokens[CHIRP], "watch_events"))
    allowed = flows.reference(flows.decided(r))
    assert release.columns == ("title_id", "watched_at")
    assert release.rows
    assert sorted(release.rows) == viewings(flows, flows.decided(r), before)
    # Every US member let through holds a distinct and separate consent for this purpose.
    us = {p.id for p in flows.population.people if p.party == REELIX and p.jurisdiction[:2] == "US"}
    separate = {
        c.person
        for c in flows.population.consents
        if c.controller == REELIX and c.distinct_and_separate and WATCHED in c.categories
    }
    assert allowed & us
    assert allowed & us <= separate
    assert len(allowed) < PEOPLE


def test_watch_activity_for_one_title(flows: Flows) -> None:
    title = "title-0003"
    r = watch_read("watch-activity", "functional.service", title=title)
    before = spent(flows)
    release = flows.gateway.exchange(
        Exchange(r, flows.tokens[CHIRP], "watch_events", where={"title_id": title})
    )
    assert release.rows
    assert sorted(release.rows) == viewings(flows, flows.decided(r), before, title)


def test_interest_segments_leave_out_people_who_opted_out_of_sale_or_sharing(
    flows: Flows,
) -> None:
    r = watch_read("interest-segments", TARGETED)
    before = spent(flows)
    release = flows.gateway.exchange(Exchange(r, flows.tokens[CHIRP], "watch_events"))
    allowed = flows.reference(flows.decided(r))
    assert release.columns == ("title_id",)
    assert sorted(release.rows) == [(t,) for t, _ in viewings(flows, flows.decided(r), before)]
    opted_out = {o.person for o in flows.population.opt_outs}
    assert opted_out  # the population has people who opted out, and none of them is let through
    assert not allowed & opted_out


def test_recommendation_report_is_noised_and_spends_its_budget(flows: Flows) -> None:
    """The clause sets a privacy budget of 1: each report is differentially private, and spends
    its epsilon of every sender's budget and of the clause's."""
    r = request(
        "recommendation-report",
        requester=CHIRP,
        purpose="analytics.reporting.content_performance",
        categories=frozenset({"user.behavior"}),
    )
    measures = {"sends": "count", "clicks": "count(clicked_at)"}

    def report(*group_by: str, epsilon: float | None = 0.5) -> Release:
        return flows.gateway.exchange(
            Exchange(
                r,
                flows.tokens[CHIRP],
                "recommendations",
                group_by=group_by,
                measures=measures,
                epsilon=epsilon,
            )
        )

    by_interface = report("interface")
    assert by_interface.columns == ("interface", "sends", "clicks")
    assert by_interface.noise is not None
    assert by_interface.noise.epsilon == 0.5
    interfaces = {i for (i,) in flows.sql(REELIX, "SELECT DISTINCT interface FROM recommendations")}
    for interface, sends, clicks in by_interface.rows:
        assert interface in interfaces
        assert isinstance(sends, int)
        assert isinstance(clicks, int)
        assert min(sends, clicks) >= 0
    senders = {s for (s,) in flows.sql(REELIX, "SELECT sender_member_id FROM recommendations")}
    left = {s: flows.gateway.budgets.remaining(REELIX, s).epsilon for s in senders}
    charged = {s for s, e in left.items() if e < DEFAULT_EPSILON}
    assert charged  # every sender the clause lets through paid exactly the report's epsilon
    assert sorted(left[s] for s in charged) == pytest.approx([DEFAULT_EPSILON - 0.5] * len(charged))
    # Day by day, by interface, surface and variant: in a population this small each group has
    # a handful of senders, far below the noisy threshold (at least 50), and none shows.
    daily = report("day(sent_at)", "interface", "surface", "variant")
    groups = flows.sql(
        REELIX,
        "SELECT count(DISTINCT sender_member_id) FROM recommendations "
        "GROUP BY date(sent_at), interface, surface, variant",
    )
    assert max(n for (n,) in groups) <= 10
    assert daily.rows == []
    assert daily.people == 0  # and nothing is said of the groups held back
    with pytest.raises(Refused) as refused:  # the clause's budget of 1 is spent
        report("interface", epsilon=None)
    assert refused.value.decision.rules == (BUDGET_RULE,)
    with pytest.raises(InvalidInput, match="measure"):
        flows.gateway.exchange(Exchange(r, flows.tokens[CHIRP], "recommendations"))


def test_the_titan_agreement_is_refused(flows: Flows) -> None:
    r = request(
        "all-friends",
        agreement="chirp-reelix-titan",
        purpose="marketing.advertising",
        categories=frozenset({"user.social", "user.name"}),
        subjects=Subjects(SubjectsKind.FRIENDS_OF, anchor="c0000001"),
        on_behalf_of="c0000001",  # even asked by the person: the agreement is not in force
    )
    with pytest.raises(Refused) as refused:
        flows.gateway.exchange(
            Exchange(r, flows.tokens[REELIX], "friendships", where={"person_id": "c0000001"})
        )
    assert refused.value.decision.rules == ("lifecycle:chirp-reelix-titan",)
    assert flows.accord.ledger.leaf(refused.value.receipt.index).entry()["allowed"] is False


def test_account_link_is_read_for_the_member_who_made_it(flows: Flows) -> None:
    ((member, chirp_id, linked_at),) = flows.sql(
        REELIX, "SELECT member_id, chirp_person_id, linked_at FROM linked_accounts LIMIT 1"
    )
    r = request(
        "account-link",
        requester=CHIRP,
        purpose="essential.service.authentication",
        categories=frozenset({"user.account.linked"}),
        subjects=Subjects(SubjectsKind.PEOPLE, people=frozenset({str(member)})),
    )
    release = flows.gateway.exchange(Exchange(r, flows.tokens[CHIRP], "linked_accounts"))
    assert release.columns == ("chirp_person_id", "linked_at")
    assert release.rows == [(chirp_id, linked_at)]
    assert release.people == 1


def test_a_recommendation_is_sent_as_a_chirp_message_on_the_senders_behalf(
    flows: Flows,
) -> None:
    def send(sender: str) -> Request:
        return request(
            "send-recommendation",
            operation=Operation.WRITE,
            subjects=Subjects(SubjectsKind.PEOPLE, people=frozenset({sender})),
            on_behalf_of=sender,
        )

    # Whom the clause lets send, whoever is named: the filter without its named people.
    allowed = flows.reference(replace(flows.decided(send("c0000000")), subjects=None))
    threads = flows.sql(CHIRP, "SELECT person_id, thread_id FROM thread_participants")
    sender, thread = next((str(p), t) for p, t in sorted(threads) if str(p) in allowed)
    row = {
        "thread_id": thread,
        "body": "Watch title-0003 with me",
        "sender_id": sender,
        "sent_at": AT.isoformat(),
        "sent_via": "reelix",
    }
    release = flows.gateway.exchange(
        Exchange(send(sender), flows.tokens[REELIX], "messages", rows=[row])
    )
    assert release.written == 1
    landed = flows.sql(
        CHIRP, "SELECT sender_id, sent_via FROM messages WHERE body = ?", row["body"]
    )
    assert landed == [(sender, "reelix")]
    refused = next(str(p) for p, _ in sorted(threads) if str(p) not in allowed)
    nothing = flows.gateway.exchange(
        Exchange(
            send(refused), flows.tokens[REELIX], "messages", rows=[{**row, "sender_id": refused}]
        )
    )
    assert nothing.written == 0
    assert nothing.withheld  # with the rule that kept the row out


def test_the_ledger_holds_every_flow_and_verifies(flows: Flows) -> None:
    report = verify_ledger(flows.accord.ledger)
    assert report.ok, report
    assert report.size == flows.accord.ledger.head().size
