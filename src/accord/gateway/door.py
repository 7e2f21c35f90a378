"""The door itself: :class:`Gateway` authenticates, decides, fetches or writes, logs, releases."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, cast

from sqlalchemy.orm import Session

from accord import taxonomy
from accord.agreements import Agreement, Clause, Granularity
from accord.consent import Operation
from accord.datafolder import DataFolder
from accord.errors import AccordError, InvalidInput
from accord.filters import SUBJECT_RULE, PersonFilter
from accord.gateway import private
from accord.gateway.doubts import Doubt, Doubts, journals_of
from accord.gateway.errors import (
    GatewayError,
    Refused,
    ReleaseFailed,
    ReleaseInDoubt,
    Unauthenticated,
)
from accord.gateway.exchange import LEDGER_GRANULARITY, Exchange, Noise, Release
from accord.gateway.keyring import Keyring
from accord.gateway.titles import admit_rows, with_title
from accord.gateway.titles import scope as title_scope
from accord.law.friends import RELATIONS_REASON, RELATIONS_RULE_ID
from accord.ledger.entries import DecisionEntry, ReleaseEntry
from accord.ledger.log import AppendInDoubt, Receipt
from accord.ledger.notes import (
    RELEASE_FAILED_RULE,
    RELEASE_UNDELIVERED_RULE,
    failed_in,
    never_received,
)
from accord.ledger.rows import sum_if_small
from accord.pets.budget import BUDGET_RULE, BudgetExceeded, Charge, Cost, PrivacyBudgets
from accord.policy import Decision, Policy
from accord.requests import Request, SubjectsKind
from accord.service import Accord, decision_entry, person_refs, refusal_entry, without_values
from accord.sources import Allowed, Source
from accord.sources.datasets import Collection, Dataset, GroupSpec
from accord.store import filter_sql
from accord.store.engine import store_identity
from accord.store.erased import is_erased
from accord.store.repositories import PeopleRepository
from accord.store.title_sql import record_uses

UNAUTHENTICATED_RULE = "gateway:unauthenticated"
ERROR_RULE = "gateway:error"
UNKNOWN_PERSON = "gateway:unknown-person"
"""The reason counted for a written row whose person the Accord store does not know."""
NOT_A_MEMBER = "gateway:not-a-member"
"""The reason counted for a row posted on a person's behalf into a group they are not in."""
TITLE_WITHHELD = "gateway:title-withheld"
"""The reason counted for a written row whose title the person's consents do not allow."""

# Fields that say which rows or people a condition picks, not what the rows hold: a ``where`` may
# name them even when the decision does not release them.
_CONDITION_CATEGORIES = ("system", "user.unique_id")
_INNER_FIELD = re.compile(r"\(([A-Za-z_][A-Za-z0-9_]*)\)")


# The category of fields that hold a person's id at a party.
PERSON_ID = "user.unique_id"


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an allowed exchange touches: the clause, the two parties, the collection, the fields."""

    decision: Decision
    clause: Clause
    filter: PersonFilter
    sender: str
    receiver: str
    source: Source
    collection: Collection
    subject: str
    """The field saying whom each row is about: the person field, or the group field."""
    fields: tuple[str, ...]
    """Bare names of the decision's fields in this collection, in declaration order."""
    client: str | None = None
    """The partner app that asked, if one did (:attr:`Exchange.client`)."""
    deadline: float | None = None
    """When the caller stops waiting (:attr:`Exchange.deadline`)."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    about: frozenset[str]
    people: int
    fields: tuple[str, ...]
    granted: frozenset[tuple[str, str]] = frozenset()
    """The (person, title) pairs released under a title verdict (see :mod:`.titles`)."""
    noise: Noise | None = None
    """How an aggregate under a clause with a privacy budget was noised, and its spend."""


_Planned = tuple[Dataset, Collection, str, tuple[str, ...]]
"""The dataset a plan was made for, and its collection, subject field and fields."""

_PLANS_KEPT = 512
"""At most this many shapes of request are kept planned per policy (then the cache starts anew)."""


# -- the door --------------------------------------------------------------------------------------


class Gateway:
    """The one door between parties: authenticate, decide, fetch, transform, log, release."""

    def __init__(
        self,
        accord: Accord,
        sources: Mapping[str, Source],
        credentials: Keyring,
        *,
        budgets: PrivacyBudgets | None = None,
        doubts: Path | None = None,
    ) -> None:
        """``doubts`` is the folder of the journals of releases in doubt (default: the store's
        own, under ``doubts`` in the data folder Accord was opened with, if any; see
        :mod:`accord.gateway.doubts`)."""
        if doubts is None and accord.folder is not None:
            doubts = journals_of(DataFolder(accord.folder).doubts, store_identity(accord.engine))
        self.accord = accord
        self.sources = dict(sources)
        self.credentials = credentials
        self.budgets = budgets or PrivacyBudgets(accord.engine, accord.ledger)
        """Each person's privacy budget, which aggregates under a clause with a budget spend."""
        self._plans: tuple[Policy | None, dict[tuple[Any, ...], _Planned]] = (None, {})
        """The parts of a plan fixed by the policy they were made under (see :meth:`_plan`)."""
        self._doubts = Doubts(doubts)
        """Releases whose entries' commit failed, not yet told apart (see :meth:`_settle`)."""

    def exchange(self, exchange: Exchange) -> Release:
        """Run one exchange; returns the release only once its ledger entries are durable.

        Raises :class:`Unauthenticated`, :class:`Refused`, or (for any failure on the way, which
        releases nothing) an :class:`~accord.errors.AccordError`: the error itself when it is
        Accord's own, else a :class:`GatewayError`.
        """
        request = exchange.request
        if self._doubts:
            self._settle()
        if not self.credentials.authenticate(request.requester, exchange.token):
            raise Unauthenticated(self._log_unauthenticated(request, exchange.client))
        try:
            return self._run(exchange)
        except (Refused, ReleaseFailed, ReleaseInDoubt):
            raise  # already in the ledger, or to be (see _settle)
        except AccordError as exc:
            logged = without_values(exc.message, _sent(exchange))
            self._log_failure(
                request, ERROR_RULE, f"the exchange failed: {logged}", exchange.client
            )
            raise
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            logged = without_values(message, _sent(exchange))
            self._log_failure(
                request, ERROR_RULE, f"the exchange failed: {logged}", exchange.client
            )
            raise GatewayError(f"the exchange failed and released nothing: {message}") from exc

    def _run(self, exchange: Exchange) -> Release:
        request = exchange.request
        # The policy is read once per exchange: deciding and planning see the same registry.
        policy = self.accord.policy()
        decision = policy.decide(request)
        if not decision.allowed:
            entry = decision_entry(decision, 0, exchange.client)
            receipt = self.accord.ledger.append([entry])[0]
            raise Refused(decision, receipt)
        plan = self._plan(policy, decision, exchange)
        self._refuse_erased(plan)
        if request.operation is Operation.WRITE:
            return self._write(plan, exchange)
        return self._read(plan, exchange)

    def _refuse_erased(self, plan: _Plan) -> None:
        """Nothing flows on behalf of, or about the relations of, a person their party erased:
        their friend list or threads are about them too."""
        asking = plan.decision.request.requester_person
        if asking is None:
            return
        # A Core connection: a lookup by primary key needs none of the ORM's machinery.
        with self.accord.engine.connect() as conn:
            gone = is_erased(conn, plan.filter.controller, asking)
        if gone:
            raise InvalidInput(
                "the person this request is made for or about was erased: nothing about them "
                "flows any more"
            )

    # -- failing closed ----------------------------------------------------------------------------

    def _log_failure(
        self,
        request: Request,
        rule: str,
        what: str,
        client: str | None = None,
        *,
        about: tuple[str, ...] = (),
    ) -> Receipt | None:
        """Log a refused decision for a failure, if the ledger can still take it; ``about`` the
        people of a release it says did not reach its recipient."""
        entry = _failure_entry(request, rule, what, client, about=about)
        try:
            return self.accord.ledger.append([entry])[0]
        except Exception:  # noqa: BLE001 - the ledger is unreachable; the caller raises anyway
            return None

    def _settle(self) -> None:
        """Say in the ledger what became of each release whose entries' commit failed, once the
        store answers: held, the release is noted as never received by its caller (who was
        answered that nothing was released); not held, the exchange's failure is logged as any
        other. A doubt the store cannot settle yet waits for the next exchange, in this
        process's memory and its journal (:mod:`accord.gateway.doubts`)."""
        left: list[Doubt] = []
        for doubt in self._doubts.take():
            if left:
                left.append(doubt)  # the store stopped answering: the rest wait too
                continue
            try:
                held = self.accord.ledger.holds(doubt.receipts)
                self.accord.ledger.append([doubt.held if held else doubt.lost])
            except Exception:  # noqa: BLE001 - the store does not answer yet: the next exchange
                left.append(doubt)
                continue
            self._doubts.settled(doubt)
        if left:
            self._doubts.back(left)

    def _doubt(
        self,
        request: Request,
        client: str | None,
        receipts: Sequence[Receipt],
        why: str,
        about: tuple[str, ...],
    ) -> None:
        """Keep the release of ``request`` whose entries have, or would have had, ``receipts``
        (the release's last), until the store says whether it holds them; ``why`` its caller
        did not receive it, ``about`` the ledger ids of its people."""
        release = receipts[-1].index
        held = _failure_entry(
            request,
            RELEASE_UNDELIVERED_RULE,
            never_received(release, why),
            client,
            about=about,
        )
        lost = _failure_entry(
            request,
            ERROR_RULE,
            "the exchange failed: the store failed while committing its release",
            client,
        )
        self._doubts.add(Doubt(uuid.uuid4().hex, tuple(receipts), held, lost))

    def note_unreceived(
        self, request: Request, client: str | None, release: Release, why: str
    ) -> None:
        """Note in the ledger that ``release``, made for ``request``, was never received by its
        caller, ``why`` (the caller having been answered that nothing was released): now, or
        once the store answers. The note is about the release's people, so that each of them
        reads it beside the release."""
        if release.receipts:
            self._doubt(request, client, release.receipts, why, release.about)
        self._settle()

    def _log_unauthenticated(self, request: Request, client: str | None) -> Receipt | None:
        return self._log_failure(
            request,
            UNAUTHENTICATED_RULE,
            "the credentials presented are not valid for the requesting party",
            client,
        )

    # -- planning ----------------------------------------------------------------------------------

    def _plan(self, policy: Policy, decision: Decision, exchange: Exchange) -> _Plan:
        request = decision.request
        clause, person_filter = decision.clause, decision.filter
        if clause is None or person_filter is None:
            raise GatewayError("the policy allowed the request without a clause or a filter")
        agreement: Agreement = policy.registry[request.agreement].agreement
        sender, receiver = agreement.sender_of(clause), agreement.receiver_of(clause)
        holder = receiver if request.operation is Operation.WRITE else sender
        source = self.sources.get(holder)
        if source is None:
            raise GatewayError(f"no source is configured for {holder}")
        # What follows depends only on the policy (one registry revision), the source and the
        # request's shape: worked out once, then reused until the registry changes.
        plans = self._plans
        if plans[0] is not policy:
            plans = self._plans = (policy, {})
        key = (
            request.agreement,
            request.clause,
            request.operation,
            exchange.collection,
            source,
            request.fields,
            request.categories,
            decision.fields,
        )
        if source.dataset.party != holder:
            raise GatewayError(
                f"the source configured for {holder} declares {source.dataset.party}'s dataset"
            )
        known = plans[1].get(key)
        if known is None or known[0] is not source.dataset:
            collection = source.dataset.collection(exchange.collection)
            subject = collection.subject_field
            if not subject:
                raise InvalidInput(
                    f"collection {collection.name} of dataset {source.dataset.id} is about no "
                    "person: it holds no personal data, and nothing about people crosses through it"
                )
            fields = self._fields(decision, collection, source)
            if len(plans[1]) >= _PLANS_KEPT:
                plans[1].clear()
            known = plans[1][key] = (source.dataset, collection, subject, fields)
        _, collection, subject, fields = known
        return _Plan(
            decision,
            clause,
            person_filter,
            sender,
            receiver,
            source,
            collection,
            subject,
            fields,
            exchange.client,
            exchange.deadline,
        )

    @staticmethod
    def _fields(decision: Decision, c: Collection, source: Source) -> tuple[str, ...]:
        """The decision's fields in collection ``c``: all of them must be there."""
        prefix = c.name + "."
        outside = sorted(f for f in decision.request.fields if not f.startswith(prefix))
        if outside:
            raise InvalidInput(
                f"fields {', '.join(outside)} are not in collection {c.name}: an exchange reads "
                "or writes one collection",
                where=f"request {decision.request.id}",
            )
        names = {f.removeprefix(prefix) for f in decision.fields if f.startswith(prefix)}
        matching = decision.clause is not None and (
            decision.clause.granularity is Granularity.MATCH_ONLY
        )
        if not names and not matching:
            raise InvalidInput(
                f"the decision releases no field of collection {c.name} "
                f"(it releases {', '.join(sorted(decision.fields)) or 'nothing'})",
                where=f"request {decision.request.id}",
            )
        for name in names:
            declared = source.dataset.field(prefix + name)
            if not _condition_only(declared.category) and not taxonomy.covered_by_any(
                declared.category, decision.request.categories
            ):
                raise InvalidInput(
                    f"field {prefix}{name} holds {declared.category}, which the request's "
                    f"categories ({', '.join(sorted(decision.request.categories))}) do not "
                    "cover: a request must name every category it moves",
                    where=f"request {decision.request.id}",
                )
        return tuple(n for n in c.field_names if n in names)

    @staticmethod
    def _check_where(plan: _Plan, where: Mapping[str, Any] | None) -> None:
        """Conditions may name released fields, and identifiers; never other personal data."""
        for key in where or {}:
            name = key.removeprefix(plan.collection.name + ".")
            declared = plan.collection.field(name)
            if declared is None or name in plan.fields or _condition_only(declared.category):
                continue  # an undeclared field is refused by the source with its own message
            raise InvalidInput(
                f"a condition may not name {plan.collection.name}.{name}: the decision does "
                "not release it, and filtering on it would disclose it"
            )

    # -- reads -------------------------------------------------------------------------------------

    @staticmethod
    def _with_clause_conditions(plan: _Plan, exchange: Exchange) -> Exchange:
        """The exchange with the clause's own row conditions added to its ``where``."""
        fixed = plan.clause.conditions_on(plan.collection.name)
        if not fixed:
            return exchange
        asked = {
            k.removeprefix(plan.collection.name + "."): v for k, v in (exchange.where or {}).items()
        }
        for name, value in fixed.items():
            if name in asked and asked[name] != value:
                raise InvalidInput(
                    f"clause {plan.clause.id} moves only rows of {plan.collection.name} where "
                    f"{name} is {value!r}, not {asked[name]!r}"
                )
        return replace(exchange, where={**asked, **fixed})

    def _read(self, plan: _Plan, exchange: Exchange) -> Release:
        if exchange.rows is not None:
            raise InvalidInput("a read posts no rows")
        self._check_where(plan, exchange.where)
        exchange = self._with_clause_conditions(plan, exchange)
        self._check_relations(plan, exchange)
        request = plan.decision.request
        for_title = with_title(plan.collection, request, exchange.where)
        if for_title is not exchange.where:
            exchange = replace(exchange, where=for_title)
        granularity = plan.clause.granularity
        if granularity is not Granularity.AGGREGATE and (
            exchange.group_by
            or exchange.measures
            or exchange.epsilon is not None
            or exchange.max_rows is not None
        ):
            raise InvalidInput(
                f"clause {plan.clause.id} releases {granularity.value}s; group_by, measures, "
                "epsilon and max_rows are for aggregate clauses"
            )
        plan = self._narrowed(plan, exchange)
        # No session: judging the people is one Core query (or a stream), on a connection of the
        # store's engine taken when they are judged.
        snapshot = None
        if plan.filter.subjects is None:
            # Everyone: the clause's allowed people (and their title verdicts) as kept between
            # requests, confirmed below.
            titled = plan.collection.title is not None and request.title is None
            snapshot = self.accord.allowed.snapshot(plan.filter, titles=titled)
            people = Allowed(snapshot.people, plan.filter.group, plan.filter.controller)
        by_title = title_scope(
            self.accord.engine,
            plan.collection,
            request,
            plan.filter,
            granularity,
            kept=None if snapshot is None else snapshot.titles,
        )
        if snapshot is None:
            people = Allowed.by_filter(self.accord.engine, plan.filter)
        allowed = by_title.allowing(people)
        if granularity is Granularity.AGGREGATE:
            outcome = self._aggregate(plan, exchange, allowed)
        elif granularity is Granularity.MATCH_ONLY:
            outcome = self._match(plan, exchange, allowed)
        else:
            outcome = self._records(plan, exchange, allowed)
        if snapshot is not None:
            # Nobody the rows are about may have lost their standing while they were read.
            self.accord.allowed.confirm(snapshot, outcome.about)
        # Consents for one disclosure are spent before the release is logged: if recording fails,
        # nothing is released (and a consent another release spent first is a conflict).
        record_uses(
            self.accord.engine,
            by_title.spent(request, outcome.about, outcome.granted),
            request.at,
            request.id,
        )
        receipts, about = self._log_release(plan, outcome, granularity)
        return Release(
            decision=plan.decision,
            columns=outcome.columns,
            rows=outcome.rows,
            people=outcome.people,
            receipts=receipts,
            granularity=granularity,
            noise=outcome.noise,
            about=about,
        )

    def _check_relations(self, plan: _Plan, exchange: Exchange) -> None:
        """Refuse (and log) a read of people's relations that is not one person's own.

        The collection declares whose relation each row is (``relation_of``: a friendship is
        its owner's; a row about a group is each member's). A record or match read of it is made
        on behalf of one person and pinned to them: by a condition naming them in that field, or
        (rows about groups) to the groups they are in. However the request names the person (its
        subjects, ``on_behalf_of``, a condition), a partner acting on its own account, or for
        someone else, reads nothing; nor does a read of everyone's relations at once. An
        aggregate over everyone's relations is about no one in particular, but one pinned to a
        person is about them.
        """
        c = plan.collection
        acting = plan.decision.request.on_behalf_of
        aggregate = plan.clause.granularity is Granularity.AGGREGATE
        if c.relation_of is not None:
            pinned = _condition_on(c, exchange.where, c.relation_of)
            if pinned is _NO_CONDITION:
                if aggregate:
                    return
                why = (
                    f"this read of {c.name} names no one in {c.relation_of}, so it would read "
                    "everyone's relations at once"
                )
            elif acting is not None and str(pinned) == acting:
                return
            else:
                whose = "nobody's" if acting is None else "someone else's"
                why = (
                    f"its condition on {c.name}.{c.relation_of} pins it to one person, and it "
                    f"is made on {whose} behalf"
                )
        elif c.group is not None and not aggregate and acting is None:
            why = (
                f"rows of {c.name} are about groups, each the relation of its members; they are "
                "read on behalf of a member, only the groups that member is in"
            )
        else:
            return
        decision = Decision(
            plan.decision.request,
            False,
            (RELATIONS_RULE_ID,),
            f"Refused: {RELATIONS_REASON}; {why}.",
        )
        receipt = self.accord.ledger.append([decision_entry(decision, 0, plan.client)])[0]
        raise Refused(decision, receipt)

    def _narrowed(self, plan: _Plan, exchange: Exchange) -> _Plan:
        """For a read of one person's relations, the filter judging only the people concerned.

        A friend list pinned to its person is about that person's friends; a person's threads
        are about their members. Only they can appear in the release, so only they are judged,
        instead of everyone the party holds (the same verdicts, at any population size).
        """
        c = plan.collection
        acting = plan.decision.request.on_behalf_of
        if plan.clause.granularity is not Granularity.RECORD or acting is None:
            return plan
        if c.relation_of is not None:  # pinned to the person acting (_check_relations)
            concerned = plan.source.people_in(c.name, exchange.where or {})
        elif c.group is not None:
            concerned = plan.source.members_of(c.name, self._groups_of(plan, acting))
        else:
            return plan
        f = plan.filter
        named = frozenset(concerned) if f.subjects is None else f.subjects & concerned
        return replace(plan, filter=replace(f, subjects=named))

    def _records(self, plan: _Plan, exchange: Exchange, allowed: Allowed) -> _Outcome:
        """The released fields of the allowed rows, and whom they are about (read alongside).

        A read about one person's relations is never a bulk read: rows about groups the person
        acting is not in are dropped; a friend list is pinned to that person by its condition
        (:meth:`_check_relations`).
        """
        c = plan.collection
        extra, at, released, whose = _reading(plan.fields, plan.subject)
        request = plan.decision.request
        within: set[Any] | None = None
        if c.group is not None:
            within = self._groups_of(plan, request.on_behalf_of or "")
        elif request.subjects.relative and c.relation_of is None:
            raise InvalidInput(
                f"collection {c.name} holds no one's relations (it declares no relation_of): "
                "a read of a person's friends or threads reads a collection of relations"
            )
        rows: list[tuple[Any, ...]] = []
        subjects: set[Any] = set()
        if extra and within is None and allowed.streamed:
            # A bulk read: the database says whom the rows are about, in one query of the same
            # snapshot, rather than a column more in every row of millions.
            with plan.source.read(
                c.name, plan.fields, allowed, where=exchange.where, whom=True
            ) as read:
                for batch in read.batches():
                    # The driver's rows are tuples already; SQLAlchemy's are made tuples.
                    if type(batch[0]) is tuple:
                        rows.extend(cast(Sequence[tuple[Any, ...]], batch))
                    else:
                        rows.extend(map(tuple, batch))
                subjects.update(read.whom())
                granted = read.granted()
            return self._outcome(plan, rows, subjects, granted)
        # Each row as a tuple of the released fields only, and whom it is about: a batch at a
        # time, by C-level getters rather than Python loops.
        with plan.source.read(c.name, plan.fields + extra, allowed, where=exchange.where) as read:
            for batch in read.batches():
                kept = batch if within is None else [r for r in batch if r[at] in within]
                subjects.update(map(whose, kept))
                rows.extend(map(released, kept))
            granted = read.granted()
        return self._outcome(plan, rows, subjects, granted)

    def _outcome(
        self,
        plan: _Plan,
        rows: list[tuple[Any, ...]],
        subjects: set[Any],
        granted: set[tuple[str, str]] | None = None,
    ) -> _Outcome:
        """A record read's outcome: its rows, and the people they are about (a group's members,
        for a collection about groups)."""
        c = plan.collection
        about = frozenset(map(str, subjects)) if c.group is None else self._members(plan, subjects)
        return _Outcome(
            plan.fields, rows, about, len(about), plan.fields, granted=frozenset(granted or ())
        )

    @staticmethod
    def _members_collection(plan: _Plan) -> tuple[Collection, GroupSpec]:
        """The members table of a collection about groups, declared as a collection itself."""
        g = plan.collection.group
        members = next(
            (
                m
                for m in plan.source.dataset.collections
                if g is not None and m.name == g.members and m.person == g.member_person
            ),
            None,
        )
        if g is None or members is None:
            raise InvalidInput(
                f"collection {plan.collection.name} is about groups, but dataset "
                f"{plan.source.dataset.id} does not declare their members as a collection about "
                "each member: the gateway could not tell whom a release is about"
            )
        return members, g

    def _groups_of(self, plan: _Plan, person: str) -> set[Any]:
        """The groups ``person`` belongs to."""
        members, g = self._members_collection(plan)
        one = Allowed((person,), party=plan.filter.controller)
        with plan.source.read(members.name, (g.member_group,), one) as read:
            return {group_id for (group_id,) in read}

    def _members(self, plan: _Plan, groups: set[Any]) -> frozenset[str]:
        """The allowed members of ``groups`` (whom rows about those groups are about)."""
        if not groups:
            return frozenset()
        members, g = self._members_collection(plan)
        every = Allowed.by_filter(self.accord.engine, plan.filter)
        out: set[str] = set()
        with plan.source.read(members.name, (g.member_group, g.member_person), every) as read:
            for group_id, person in read:
                if group_id in groups:
                    out.add(str(person))
        return frozenset(out)

    def _match(self, plan: _Plan, exchange: Exchange, allowed: Allowed) -> _Outcome:
        """Only which of the requested people are present: their ids, nothing else."""
        c = plan.collection
        request = plan.decision.request
        if request.subjects.kind is not SubjectsKind.PEOPLE:
            raise InvalidInput(
                "a match-only exchange names the people to match (subjects of kind 'people')"
            )
        if c.person is None:
            raise InvalidInput(f"collection {c.name} is about groups; match people in another")
        present: set[str] = set()
        with plan.source.read(c.name, (c.person,), allowed, where=exchange.where) as read:
            for (person,) in read:
                present.add(str(person))
        rows = [(p,) for p in sorted(present)]
        return _Outcome((c.person,), rows, frozenset(present), len(present), (c.person,))

    def _aggregate(self, plan: _Plan, exchange: Exchange, allowed: Allowed) -> _Outcome:
        """Counts and sums over the released fields, groups smaller than the clause's dropped."""
        c = plan.collection
        if not exchange.measures:
            raise InvalidInput("an aggregate exchange names at least one measure")
        minimum = plan.clause.min_group_size
        if minimum is None:  # pragma: no cover - agreements refuse aggregate clauses without one
            raise GatewayError(f"clause {plan.clause.id} is aggregate but sets no minimum")
        used = [_inner(spec) for spec in exchange.group_by]
        used += [_inner(spec) for spec in exchange.measures.values() if "(" in spec]
        hidden = sorted({u for u in used if u not in plan.fields})
        if hidden:
            raise InvalidInput(
                f"an aggregate may use only the fields the decision releases "
                f"({', '.join(plan.fields)}), not {', '.join(hidden)}"
            )
        pinning = sorted(
            f"{c.name}.{name}"
            for name in (k.removeprefix(c.name + ".") for k in exchange.where or {})
            if name == plan.subject or _names_a_person(c, name)
        )
        if pinning:
            raise InvalidInput(
                "an aggregate is about no one in particular: a condition may not pin it to one "
                f"person or group ({', '.join(pinning)})"
            )
        fields = tuple(sorted(set(used)))
        if plan.clause.privacy_budget is not None:
            return self._private_aggregate(plan, exchange, allowed, fields)
        if exchange.epsilon is not None or exchange.max_rows is not None:
            raise InvalidInput(
                f"clause {plan.clause.id} sets no privacy budget: its aggregates are exact "
                "counts of groups of at least its minimum, and take no epsilon or max_rows"
            )
        result = plan.source.aggregate(
            c.name, exchange.group_by, exchange.measures, minimum, allowed, where=exchange.where
        )
        # Nothing about the groups below the minimum, nor an exact count of contributors: one
        # person's presence could be read off either (a pinned condition, or two queries that
        # differ by one person). What is said of the people is what the rows shown imply: each
        # is about at least the clause's minimum of them.
        people = minimum if result.rows else 0
        return _Outcome(result.columns, result.rows, frozenset(), people, fields)

    def _private_aggregate(
        self, plan: _Plan, exchange: Exchange, allowed: Allowed, fields: tuple[str, ...]
    ) -> _Outcome:
        """An aggregate under a clause with a privacy budget (:mod:`.private`): each person's rows
        bounded in SQL, the loss spent from every contributor's budget and the clause's before
        anything leaves, the groups chosen and the counts noised."""
        measures = exchange.measures or {}
        how = private.plan(
            plan.clause, measures, epsilon=exchange.epsilon, max_rows=exchange.max_rows
        )
        exact = plan.source.bounded_aggregate(
            plan.collection.name,
            exchange.group_by,
            measures,
            allowed,
            max_rows=how.max_rows,
            where=exchange.where,
        )
        spend = self._spend(plan, how, exact.contributors, exchange.group_by)
        rows = private.noised(exact, len(exchange.group_by), how)
        minimum = plan.clause.min_group_size or 0
        noise = Noise(
            epsilon=how.epsilon,
            delta=how.delta,
            mechanism=how.mechanism,
            max_rows=how.max_rows,
            threshold=how.selection.threshold,
            description=how.describe(minimum, len(measures)),
            spend=spend,
        )
        # As for an exact aggregate, what is said of the people is what the rows shown imply.
        people = minimum if rows else 0
        return _Outcome(exact.columns, rows, frozenset(), people, fields, noise=noise)

    def _spend(
        self, plan: _Plan, how: private.Plan, people: frozenset[str], group_by: Sequence[str]
    ) -> Receipt:
        """Charge ``people`` (and the clause) the answer's loss; refused, and logged, if short."""
        request = plan.decision.request
        by = f" by {', '.join(group_by)}" if group_by else ""
        charge = Charge(
            party=plan.sender,
            people=people,
            cost=Cost(how.epsilon, how.delta, how.mechanism),
            recipient=plan.receiver,
            description=f"an aggregate of {plan.collection.name}{by} through the gateway",
            agreement=request.agreement,
            clause=request.clause,
            purpose=request.purpose,
            categories=tuple(sorted(request.categories)),
            cap=plan.clause.privacy_budget,
        )
        try:
            return self.budgets.spend(charge).receipt
        except BudgetExceeded as exc:
            if exc.receipt is None:
                raise GatewayError(
                    f"the answer would overspend a privacy budget, and the ledger could not "
                    f"record the refusal; nothing was released: {exc.message}"
                ) from exc
            refusal = Decision(request, False, (BUDGET_RULE,), exc.message)
            raise Refused(refusal, exc.receipt) from exc

    # -- writes ------------------------------------------------------------------------------------

    def _write(self, plan: _Plan, exchange: Exchange) -> Release:
        """Post the rows whose person the decision lets through; ledger first, then the rows."""
        c = plan.collection
        request = plan.decision.request
        if plan.clause.granularity is not Granularity.RECORD:
            raise InvalidInput(
                f"clause {plan.clause.id} is {plan.clause.granularity.value}: the gateway posts "
                "records only; the receiving party reads aggregates and matches"
            )
        if exchange.where is not None or exchange.group_by or exchange.measures:
            raise InvalidInput("a write takes no conditions, group_by or measures")
        rows = list(exchange.rows or ())
        if not rows:
            raise InvalidInput("a write posts at least one row")
        permitted = set(plan.fields) | ({c.person} if c.person is not None else set())
        # The clause's row conditions mark what it writes (a message sent via Reelix): a row
        # that leaves the field out gets it, one that says otherwise is refused.
        fixed = plan.clause.conditions_on(c.name)
        wrong = [i for i, row in enumerate(rows) for n, v in fixed.items() if row.get(n, v) != v]
        if wrong:
            raise InvalidInput(
                f"clause {plan.clause.id} writes only rows of {c.name} where "
                + " and ".join(f"{n} is {v!r}" for n, v in fixed.items())
                + f"; rows {', '.join(map(str, sorted(set(wrong))[:5]))} are not"
            )
        rows = [{**fixed, **row} for row in rows] if fixed else rows
        person_of = self._whose(plan, rows, permitted)
        keep, withheld, spent = self._admit(plan, rows, person_of)
        kept = [rows[i] for i in keep]
        writers = frozenset(person_of[i] for i in keep)
        columns = tuple(n for n in c.field_names if n in permitted)
        outcome = _Outcome(columns, [], writers, len(writers), tuple(sorted(permitted)))
        note = (
            f"; {len(rows) - len(kept)} of {len(rows)} rows withheld "
            f"({_describe(withheld, plan.filter)})"
            if len(kept) < len(rows)
            else ""
        )
        record_uses(self.accord.engine, spent, request.at, request.id)
        receipts, about = self._log_release(plan, outcome, Granularity.RECORD, note=note)
        written = 0
        if kept:
            try:
                written = plan.source.write(c.name, kept)
            except Exception as exc:
                message = exc.message if isinstance(exc, AccordError) else str(exc)
                self._log_failure(
                    request,
                    RELEASE_FAILED_RULE,
                    failed_in(
                        receipts[-1].index,
                        plan.receiver,
                        without_values(message, _sent(exchange)),
                    ),
                    plan.client,
                    about=about,
                )
                raise ReleaseFailed(
                    f"writing into {plan.receiver}'s {c.name} failed; nothing was written: "
                    f"{message}"
                ) from exc
        return Release(
            decision=plan.decision,
            columns=columns,
            rows=[],
            people=len(writers),
            receipts=receipts,
            written=written,
            withheld=withheld,
            about=about,
        )

    @staticmethod
    def _whose(plan: _Plan, rows: list[Mapping[str, Any]], permitted: set[str]) -> list[str]:
        """Whom each row is about, after checking it carries only ``permitted`` fields."""
        c = plan.collection
        for index, row in enumerate(rows):
            extra = sorted(set(row) - permitted)
            if extra:
                raise InvalidInput(
                    f"row {index} has fields {', '.join(extra)}, which the decision does not let "
                    f"{plan.sender} write into {c.name} "
                    f"(it may write {', '.join(sorted(permitted))})"
                )
        if c.person is not None:
            missing = [i for i, row in enumerate(rows) if row.get(c.person) is None]
            if missing:
                raise InvalidInput(
                    f"rows {', '.join(map(str, missing[:5]))} of {c.name} do not say whom they "
                    f"are about (field {c.person})"
                )
            return [str(row[c.person]) for row in rows]
        on_behalf_of = plan.decision.request.on_behalf_of
        if on_behalf_of is None:
            raise InvalidInput(
                f"rows of {c.name} are about groups; a write into it is made on a person's "
                "behalf (on_behalf_of)"
            )
        # A partner writes only as the person it acts for: any field naming a person (a
        # message's sender) must name that person, or the partner could post under another name.
        naming = [f.name for f in c.fields if f.category == PERSON_ID and f.name in permitted]
        for index, row in enumerate(rows):
            for name in naming:
                if name in row and str(row[name]) != on_behalf_of:
                    raise InvalidInput(
                        f"row {index} of {c.name} gives {name} {row[name]!r}, but the write is "
                        f"made on behalf of {on_behalf_of}: a partner writes only as the person "
                        "it acts for"
                    )
        return [on_behalf_of] * len(rows)

    def _admit(
        self, plan: _Plan, rows: list[Mapping[str, Any]], person_of: list[str]
    ) -> tuple[list[int], dict[str, int], set[str]]:
        """The indexes of the rows to write, how many people each rule kept out, and the ids of
        the consents for one disclosure the rows rely on.

        The people are judged in one query; a row posted on a person's behalf into a group
        (a thread) also needs the person to belong to it; a row of a collection with a title
        field is judged by its title too (:func:`.titles.admit_rows`).
        """
        people = set(person_of)
        f = plan.filter
        judged = replace(
            f, subjects=frozenset(people) if f.subjects is None else f.subjects & people
        )
        request = plan.decision.request
        # Before the people are judged (see titles.scope).
        by_title = title_scope(
            self.accord.engine, plan.collection, request, judged, Granularity.RECORD
        )
        with self.accord.session() as session:
            admitted = filter_sql.allowed_people(session, judged) if judged.subjects else set()
            written = admit_rows(
                plan.collection,
                request,
                by_title,
                rows=rows,
                person_of=person_of,
                admitted=admitted,
            )
            withheld = _withheld(session, f, people - written.people)
        if written.withheld:
            withheld[TITLE_WITHHELD] = written.withheld
        keep = written.keep
        g = plan.collection.group
        on_behalf_of = plan.decision.request.on_behalf_of
        if g is not None and keep and on_behalf_of is not None:
            theirs = self._groups_of(plan, on_behalf_of)
            inside = [i for i in keep if rows[i].get(g.field) in theirs]
            if len(inside) < len(keep):
                withheld[NOT_A_MEMBER] = len(keep) - len(inside)
            keep = inside
        return keep, withheld, written.spent

    # -- the ledger --------------------------------------------------------------------------------

    def _log_release(
        self, plan: _Plan, outcome: _Outcome, granularity: Granularity, note: str = ""
    ) -> tuple[tuple[Receipt, ...], tuple[str, ...]]:
        """Append the decision and the release together; returns once both are durable, with
        their receipts and the ledger ids of the people the release is about.

        Not once the caller has stopped waiting: a release it will never receive is not logged
        (the failure is, by :meth:`exchange`)."""
        if plan.deadline is not None and time.monotonic() > plan.deadline:
            raise GatewayError(
                "the exchange ran past its time (a store was slow to answer) and was abandoned "
                "before its release was logged"
            )
        request = plan.decision.request
        controller = plan.filter.controller
        fields = _qualified(plan.collection.name, outcome.fields)
        about = person_refs(controller, outcome.about)
        release = ReleaseEntry(
            agreement=request.agreement,
            clause=request.clause,
            purpose=request.purpose,
            categories=tuple(sorted(request.categories)),
            reason=(
                f"{plan.sender} → {plan.receiver}: {len(outcome.rows) or 'no'} rows of "
                f"{plan.collection.name} {_about(outcome, granularity)}, "
                f"{LEDGER_GRANULARITY[granularity]}{_noted(outcome)}{note}"
                if request.operation is Operation.READ
                else f"{plan.sender} → {plan.receiver}: rows into {plan.collection.name} about "
                f"{outcome.people} people{note}"
            ),
            people=outcome.people,
            about=about,
            provider=plan.sender,
            recipient=plan.receiver,
            fields=fields,
            granularity=LEDGER_GRANULARITY[granularity],
            at=request.at,
            # What an auditor needs to replay the release (accord.audit): no person in it.
            operation=request.operation.value,
            title=request.title,
            scope=request.subjects.kind.value,
            rows=len(outcome.rows) if request.operation is Operation.READ else None,
            # Sealed by the ledger with the keys of the people it is about (accord.ledger.rows).
            rows_sum=sum_if_small(outcome.rows)
            if request.operation is Operation.READ and granularity is not Granularity.AGGREGATE
            else None,
        )
        try:
            receipts = self.accord.ledger.append(
                [decision_entry(plan.decision, outcome.people, plan.client), release]
            )
        except AppendInDoubt as doubt:
            # Nothing is delivered; whether the entries were stored is said once the store
            # answers, now if it does.
            if doubt.receipts:
                self._doubt(request, plan.client, doubt.receipts, _COMMIT_FAILED, about)
            self._settle()
            raise ReleaseInDoubt(
                "nothing was released, and the ledger will say whether the release's entries "
                f"were stored once the store answers: {doubt.message}"
            ) from doubt
        return tuple(receipts), about


def _failure_entry(
    request: Request,
    rule: str,
    what: str,
    client: str | None,
    *,
    about: tuple[str, ...] = (),
) -> DecisionEntry:
    """The refused decision the gateway logs for a failure: ``what`` happened, nothing was
    released."""
    reason = f"Refused: {what}; nothing was released."
    return refusal_entry(request, rule, reason, request.at, client, about=about)


_COMMIT_FAILED = (
    "the store failed while committing it, and the caller was answered that nothing was released"
)


_OWN_REASONS = {
    UNKNOWN_PERSON: "unknown to Accord",
    NOT_A_MEMBER: "posted into a group the person is not in",
    TITLE_WITHHELD: "rows of a title the person's consents do not allow",
}


def _getter(positions: range) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function taking a row to the tuple of its values at ``positions`` (a tuple even of one)."""
    if len(positions) == 1:
        (only,) = positions
        return lambda row: (row[only],)
    return itemgetter(*positions)


_Reading = tuple[
    tuple[str, ...], int, Callable[[Sequence[Any]], tuple[Any, ...]], Callable[[Sequence[Any]], Any]
]


@lru_cache(maxsize=256)
def _reading(fields: tuple[str, ...], subject: str) -> _Reading:
    """How a record read of ``fields`` about ``subject`` is made: the subject read beside the
    fields if it is not one of them, where it is in each row, and getters taking a row to its
    released fields and to its subject."""
    extra = () if subject in fields else (subject,)
    at = len(fields) if extra else fields.index(subject)
    return extra, at, _getter(range(len(fields))), itemgetter(at)


@lru_cache(maxsize=256)
def _qualified(collection: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    """``fields`` of ``collection`` as a release's ledger entry names them: qualified, sorted."""
    return tuple(sorted(f"{collection}.{name}" for name in fields))


_NO_CONDITION = object()


def _condition_on(c: Collection, where: Mapping[str, Any] | None, name: str) -> Any:
    """The value ``where`` gives field ``name`` of ``c`` (named bare or qualified), or
    :data:`_NO_CONDITION`."""
    for key, value in (where or {}).items():
        if key.removeprefix(c.name + ".") == name:
            return value
    return _NO_CONDITION


def _about(outcome: _Outcome, granularity: Granularity) -> str:
    """Whom a read's rows are about, as its ledger entry says it."""
    if granularity is not Granularity.AGGREGATE:
        return f"about {outcome.people} people"
    if outcome.people:
        return f"each about at least {outcome.people} people"
    return "about no one"


def _noted(outcome: _Outcome) -> str:
    """How a release's figures were noised, as its ledger entry says it (nothing if exact)."""
    n = outcome.noise
    if n is None:
        return ""
    return f", {n.description}; spent as logged at index {n.spend.index}"


def _names_a_person(c: Collection, name: str) -> bool:
    """Whether field ``name`` of ``c`` holds a person's id."""
    declared = c.field(name)
    return declared is not None and taxonomy.covers(PERSON_ID, declared.category)


def _sent(exchange: Exchange) -> list[Any]:
    """Every value a partner sent in an exchange (its conditions and rows): an error may quote
    one, and the ledger's copy of the error must not (any may be a person's id)."""
    values = list((exchange.where or {}).values())
    for row in exchange.rows or ():
        values.extend(row.values())
    return values


def _condition_only(category: str) -> bool:
    return taxonomy.covered_by_any(category, _CONDITION_CATEGORIES)


def _inner(spec: str) -> str:
    """The field a ``day(field)``/``sum(field)`` spec names, or the spec itself."""
    match = _INNER_FIELD.search(spec)
    return match.group(1) if match else spec


def _withheld(session: Session, f: PersonFilter, refused: set[str]) -> dict[str, int]:
    """How many of the ``refused`` people each rule of ``f`` keeps out (one query, not a loop).

    People the request did not name, and people unknown to the store, are counted apart.
    """
    if not refused:
        return {}
    counts: dict[str, int] = {}
    if f.subjects is not None and refused - f.subjects:
        counts[SUBJECT_RULE] = len(refused - f.subjects)
    judged = replace(f, subjects=frozenset(refused))
    counts.update((k, v) for k, v in filter_sql.refusals(session, judged).items() if v)
    known = len(PeopleRepository(session).get_many(f.controller, refused))
    if len(refused) > known:
        counts[UNKNOWN_PERSON] = len(refused) - known
    return counts


def _describe(withheld: Mapping[str, int], f: PersonFilter) -> str:
    if not withheld:
        return "no reason recorded"
    return "; ".join(
        f"{n} {'person' if n == 1 else 'people'} {f.reason_for(rule)}"
        if rule not in _OWN_REASONS
        else f"{n} {_OWN_REASONS[rule]}"
        for rule, n in sorted(withheld.items())
    )
