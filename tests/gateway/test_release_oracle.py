"""Nothing leaves that the decision did not allow, over random populations, consents and requests.

Each example builds a fresh world (on SQLite files, and again on PostgreSQL): a random agreement
(registered, and usually reviewed and activated), a random request, and a random population with
random consents, jurisdictions and opt-outs, whose rows sit in the providing party's own
database. The request goes through the one door, :meth:`Gateway.exchange`. Every released row is
then checked against the oracle of ``test_policy_properties`` — the rules restated from the
statutes and the agreement format without Accord's filter, policy or SQL — and, the other way
round, every row the oracle finds lawful must be released.

Rows carry a title, and the oracle judges each row by its person *and* its title: a row may go
only if the person's consents allow that title (not excluded case by case, and ongoing or for one
disclosure of that title, 18 U.S.C. 2710(b)(2)(B)(ii)-(iii)), and, when the request is about one
title, only if it is that title's.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, MetaData, String, Table

import yaml_text
from accord import agreements as ag
from accord.consent import Consent, Method, Operation, PersonFacts
from accord.errors import AccordError
from accord.gateway import Exchange, Gateway, Keyring, Refused, Release
from accord.requests import Subjects, SubjectsKind
from accord.service import Accord
from accord.sources import Source, parse
from accord.store import tables as st_tables
from accord.store.engine import make_engine
from databases import fresh_postgres_database
from gateway.helpers import last_entries
from test_policy_properties import (
    PARTIES,
    PEOPLE,
    clauses,
    lawful,
    people,
    requests,
    sender_receiver,
)

pytestmark = pytest.mark.integration

FIELDS = ("a", "b", "c")
TITLES = ("t1", "t2", "t3")
_example = itertools.count()


def dataset(party: str) -> str:
    # The released fields say nothing by their category (system), so any request may carry them;
    # each value names its person and title, so a release shows whom and which title every row is
    # about.
    return f"""
dataset: {party}
party: {party}
collections:
  - name: t
    person: person_id
    title: title_id
    fields:
      - {{name: person_id, category: user.unique_id}}
      - {{name: title_id, category: system.operations}}
      - {{name: a, category: system.operations}}
      - {{name: b, category: system.operations}}
      - {{name: c, category: system.operations}}
"""


@dataclass
class Example:
    accord: Accord
    gateway: Gateway
    tokens: dict[str, str]
    tables: dict[str, Table]
    engines: dict[str, Any]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def x(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Example]:
    """One world for every example, each party's database and the Accord store on SQLite files or
    on PostgreSQL; each example starts by emptying it (see ``_empty``)."""
    folder = tmp_path_factory.mktemp("oracle")
    with ExitStack() as stack:
        if request.param == "postgres":
            urls = {p: stack.enter_context(fresh_postgres_database()) for p in PARTIES}
            store: str | None = stack.enter_context(fresh_postgres_database())
        else:
            urls = {p: f"sqlite:///{folder / f'{p}.db'}" for p in PARTIES}
            store = None
        yield from _world(folder, urls, store)


def _world(folder: Path, urls: dict[str, str], store: str | None) -> Iterator[Example]:
    metadata = MetaData()
    table = Table("t", metadata, *(Column(n, String) for n in ("person_id", "title_id", *FIELDS)))
    engines = {p: make_engine(url) for p, url in urls.items()}
    try:
        for engine in engines.values():
            metadata.create_all(engine)
        with Accord.open(database_url=store, data_dir=folder / "accord") as accord:
            keyring = Keyring()
            tokens = {p: keyring.issue(p) for p in PARTIES}
            sources = {
                p: Source(engines[p], parse(dataset(p), source=f"{p}.yaml")) for p in PARTIES
            }
            yield Example(accord, Gateway(accord, sources, keyring), tokens, {"t": table}, engines)
    finally:
        for engine in engines.values():
            engine.dispose()


def _empty(x: Example) -> None:
    """No people, consents, opt-outs or rows left from an earlier example (agreements stay)."""
    for engine in x.engines.values():
        with engine.begin() as conn:
            conn.execute(x.tables["t"].delete())
    with x.accord.session() as s:
        for table in (
            st_tables.consent_uses,
            st_tables.consent_purposes,
            st_tables.consent_categories,
            st_tables.consent_excluded_titles,
            st_tables.consents,
            st_tables.opt_outs,
            st_tables.people,
        ):
            s.execute(table.delete())


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_release_is_what_the_statute_oracle_allows(x: Example, data: st.DataObject) -> None:
    _empty(x)
    name = f"a{next(_example)}"
    doc = {
        "id": name,
        "title": "a random agreement",
        "provider": "chirp",
        "recipient": "reelix",
        "valid_from": data.draw(st.sampled_from(["2025-01-01", "2026-01-01"])),
        "valid_until": data.draw(st.sampled_from(["2026-05-01", "2027-01-01", "2029-01-01"])),
        "clauses": [data.draw(clauses(i)) for i in range(data.draw(st.integers(1, 2)))],
    }
    x.accord.register(yaml_text.dump(doc), source=f"{name}.yaml", by="legal")
    if data.draw(st.integers(0, 9)) < 8:
        x.accord.review(name, reviewer="Dana", findings="none", approved=True)
        x.accord.move(name, ag.Status.ACTIVE, by="dpo")
    reg = x.accord.agreement(name)
    drawn = data.draw(requests(reg))
    # Reads about everyone or about named people in a plain collection (relations and threads
    # have tests of their own).
    named = data.draw(st.one_of(st.none(), st.sets(st.sampled_from(PEOPLE), min_size=1)))
    subjects = Subjects(SubjectsKind.PEOPLE, people=frozenset(named)) if named else Subjects()
    req = replace(drawn, operation=Operation.READ, subjects=subjects)
    clause = reg.agreement.clause(req.clause)
    holder = sender_receiver(reg.agreement, clause)[0] if clause else "chirp"
    population: list[PersonFacts] = data.draw(
        st.lists(people(holder, req), min_size=1, max_size=4, unique_by=lambda f: f.person.id)
    )
    rows = [
        {
            "person_id": f.person.id,
            "title_id": title,
            **{n: f"{f.person.id}:{n}:{k}:{title}" for n in FIELDS},
        }
        for f in population
        for k, title in enumerate(
            data.draw(st.lists(st.sampled_from(TITLES), min_size=1, max_size=3))
        )
    ]
    with x.engines[holder].begin() as conn:
        if rows:
            conn.execute(x.tables["t"].insert(), rows)
    # The strategy's consent ids may repeat; the store's may not.
    given = [
        replace(c, id=f"{c.id}-{k}")
        for k, c in enumerate(c for f in population for c in f.consents)
    ]
    # Some people also hold a consent that meets every rule, so that examples release people.
    other = next(p for p in PARTIES if p != holder)
    for f in population:
        if data.draw(st.booleans()):
            given.append(
                Consent(
                    id=f"{f.person.id}-complete",
                    person=f.person.id,
                    controller=holder,
                    recipient=other,
                    purposes=frozenset({req.purpose}),
                    categories=frozenset(req.categories),
                    jurisdiction=f.person.jurisdiction,
                    given_at=req.at - timedelta(days=30),
                    notice="notice-1",
                    distinct_and_separate=True,
                    withdrawal_method=Method.IN_APP_DIALOG,
                )
            )
    population = [
        replace(f, consents=tuple(c for c in given if c.person == f.person.id)) for f in population
    ]
    x.accord.import_records(
        [f.person for f in population],
        given,
        [o for f in population for o in f.opt_outs],
    )
    decision = x.accord.policy().decide(req)
    before = x.accord.ledger.head().size
    outcome: Release | AccordError
    try:
        outcome = x.gateway.exchange(Exchange(req, x.tokens[req.requester], "t"))
    except AccordError as error:
        outcome = error
    if isinstance(outcome, Refused):
        event("refused")
        assert not decision.allowed
        assert set(outcome.decision.rules) == set(decision.rules)
        (logged,) = last_entries(x.accord.ledger, 1)
        assert logged["allowed"] is False
        assert x.accord.ledger.head().size == before + 1
        return
    if isinstance(outcome, AccordError):
        # Refused at the door for the shape of the exchange (no field of the collection to
        # release, say): nothing released, and the refusal logged.
        event("refused at the door")
        (logged,) = last_entries(x.accord.ledger, 1)
        assert logged["allowed"] is False
        return
    release = outcome
    assert decision.allowed
    assert set(release.columns) <= {f"t.{n}".removeprefix("t.") for n in FIELDS}
    assert {f"t.{c}" for c in release.columns} <= decision.fields
    facts = {f.person.id: f for f in population}

    def allowed_row(person: str, title: str) -> bool:
        """The statutes' verdict on one row: its person, judged for its own title."""
        if req.title is not None and title != req.title:
            return False  # a request about one title is about that title's rows only
        return not lawful(reg, replace(req, title=title), decision.fields, facts[person])

    released_pairs = [
        tuple(str(next(v for v in row if v is not None)).split(":")[i] for i in (0, 3))
        for row in release.rows
    ]
    whose = {person for person, _ in released_pairs}
    event(f"{len(whose)} of {len(population)} released")
    event(f"{len(release.rows)} of {len(rows)} rows released")
    # Nothing outside agreement ∩ consent ∩ law, row by row (person and title) ...
    refused = [pair for pair in released_pairs if not allowed_row(*pair)]
    assert not refused, (refused, decision.reason)
    # ... and no lawful row held back: all of them, and only them.
    expected = sorted(
        tuple(r[c] for c in release.columns)
        for r in rows
        if allowed_row(r["person_id"], r["title_id"])
    )
    assert sorted(release.rows) == expected
    assert release.people == len(whose)
    decided, released = last_entries(x.accord.ledger, 2)
    assert decided["kind"] == "decision"
    assert decided["allowed"] is True
    assert released["kind"] == "release"
    assert released["people"] == release.people
