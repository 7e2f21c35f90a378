"""Agreements and law compiled into Cedar policies; decisions that explain themselves.

Every clause of every agreement in force becomes one Cedar ``permit`` policy naming the party
that may act, the operation, the clause, its purposes, categories and fields, and its validity
dates. Every agreement that is not active becomes a ``forbid`` that says why. Every request-level
rule of the law (``accord.law``) becomes a ``forbid``, and so does Accord's rule that a person's
relations are read only with that person acting (``accord.law.friends``). The policy set, the
entities and the schema are parsed once, when a :class:`Policy` is built, and reused for every
decision (``cedarpy.PolicySet``, ``Entities``, ``Schema`` handles); batches of requests go to
Cedar in one call.

Cedar decides the request as a whole, once. What depends on each person — their consent, their
jurisdiction, their opt-outs — is returned as a :class:`~accord.filters.PersonFilter`, a
set-based specification a store evaluates in one query. Nothing here calls Cedar per person.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Literal

import cedarpy

from accord import taxonomy
from accord.agreements import Agreement, Clause, Granularity, Registered
from accord.consent import Operation
from accord.errors import PolicyError, translate
from accord.filters import ConsentNeed, Group, PersonFilter, Rule
from accord.jurisdictions import Jurisdictions
from accord.law import Disclosure, RequestRule, friends, gdpr, optout, sca, vppa
from accord.requests import Request, Subjects, SubjectsKind

SCHEMA = """
namespace Accord {
  entity Party;
  entity Agreement = { status: String, provider: Party, recipient: Party };
  entity Clause in [Agreement];
  type RequestContext = {
    purpose: String,
    categories: Set<String>,
    fields: Set<String>,
    now: Long,
    delegated: Bool,
    relative: Bool,
    for_anchor: Bool,
  };
  action "read", "write" appliesTo {
    principal: [Party],
    resource: [Clause],
    context: RequestContext,
  };
}
"""

LAW: tuple[RequestRule, ...] = sca.REQUEST_RULES

_ANSWERS_KEPT = 4096
"""Cedar answers a policy keeps by request shape; past this many it forgets them all."""


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """One Cedar policy Accord generated, with the sentence shown when it decides."""

    id: str
    effect: Literal["permit", "forbid"]
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a request: allowed or not, which rules decided, and why, in one sentence.

    When allowed, ``fields`` are the fields that may cross and ``filter`` says whose data may.
    """

    request: Request
    allowed: bool
    rules: tuple[str, ...]
    reason: str
    fields: frozenset[str] = frozenset()
    filter: PersonFilter | None = None
    clause: Clause | None = field(default=None, compare=False)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready account of the decision (what the ledger and the pages show)."""
        r = self.request
        return {
            "request": r.id,
            "allowed": self.allowed,
            "rules": list(self.rules),
            "reason": self.reason,
            "requester": r.requester,
            "agreement": r.agreement,
            "clause": r.clause,
            "operation": r.operation.value,
            "purpose": r.purpose,
            "categories": sorted(r.categories),
            "fields": sorted(self.fields),
            "subjects": r.subjects.describe(),
            "person_rules": [{"id": rule.id, "reason": rule.reason} for rule in self.filter.rules]
            if self.filter
            else [],
            "at": r.at.isoformat(),
        }


def _lit(value: str) -> str:
    """A Cedar string literal (Cedar's escapes match JSON's for the keys Accord emits)."""
    return json.dumps(value, ensure_ascii=True)


def _set(values: Iterable[str]) -> str:
    return "[" + ", ".join(_lit(v) for v in sorted(values)) + "]"


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def clause_uid(agreement: str, clause: str) -> str:
    """The Cedar id of a clause."""
    return f"{agreement}/{clause}"


def acting_party(agreement: Agreement, clause: Clause, operation: Operation) -> str:
    """Who may perform ``operation`` under ``clause``: the receiver reads, the sender writes."""
    if operation is Operation.READ:
        return agreement.receiver_of(clause)
    return agreement.sender_of(clause)


def _touching(category: str) -> frozenset[str]:
    """Every key a request could name that includes or lies within ``category``."""
    return frozenset(taxonomy.ancestors(category)) | taxonomy.descendants(
        taxonomy.Kind.CATEGORY, category
    )


def compile_policies(
    registry: Iterable[Registered], law: Sequence[RequestRule] = LAW
) -> tuple[CompiledPolicy, ...]:
    """Cedar policies for every agreement in ``registry`` and every request rule of ``law``."""
    out: list[CompiledPolicy] = []
    for reg in sorted(registry, key=lambda r: r.agreement.id):
        a = reg.agreement
        blocked = reg.why_not_in_force(a.valid_from)
        if blocked is not None:
            out.append(
                CompiledPolicy(
                    id=f"lifecycle:{a.id}",
                    effect="forbid",
                    text=(
                        f"forbid (principal, action, resource in Accord::Agreement::{_lit(a.id)});"
                    ),
                    reason=blocked,
                )
            )
            continue
        for c in a.clauses:
            for op in sorted(c.operations):
                conditions = [
                    _set(taxonomy.expand(taxonomy.Kind.PURPOSE, c.purposes))
                    + ".contains(context.purpose)",
                    _set(taxonomy.expand(taxonomy.Kind.CATEGORY, c.categories))
                    + ".containsAll(context.categories)",
                    f"context.now >= {_epoch(a.valid_from)}",
                    f"context.now < {_epoch(a.valid_until)}",
                ]
                if c.fields:
                    conditions.append(f"{_set(c.fields)}.containsAll(context.fields)")
                party = acting_party(a, c, op)
                out.append(
                    CompiledPolicy(
                        id=f"clause:{a.id}/{c.id}:{op.value}",
                        effect="permit",
                        text=(
                            f"permit (\n  principal == Accord::Party::{_lit(party)},\n"
                            f"  action == Accord::Action::{_lit(op.value)},\n"
                            f"  resource == Accord::Clause::{_lit(clause_uid(a.id, c.id))}\n)"
                            "\nwhen {\n  " + " &&\n  ".join(conditions) + "\n};"
                        ),
                        reason=(
                            f"clause {c.id} of agreement {a.id} lets {party} {op.value} "
                            f"{', '.join(sorted(c.categories))} for "
                            f"{', '.join(sorted(c.purposes))}"
                        ),
                    )
                )
    # A person's friends or threads are read only by that person (through the partner acting
    # for them): a request about the relations of anyone else, or of no one acting, is refused.
    out.append(
        CompiledPolicy(
            id=friends.RELATIONS_RULE_ID,
            effect="forbid",
            text=(
                "forbid (principal, action, resource)\n"
                "when { context.relative && !context.for_anchor };"
            ),
            reason=friends.RELATIONS_REASON,
        )
    )
    for rule in law:
        touching: set[str] = set()
        for category in rule.categories:
            touching |= _touching(category)
        action = (
            f"action == Accord::Action::{_lit(rule.operation.value)}"
            if rule.operation is not None
            else "action"
        )
        conditions = [f"context.categories.containsAny({_set(touching)})"]
        if rule.unless_delegated:
            conditions.append("!context.delegated")
        out.append(
            CompiledPolicy(
                id=rule.id,
                effect="forbid",
                text=f"forbid (principal, {action}, resource)\nwhen {{ "
                + " && ".join(conditions)
                + " };",
                reason=rule.reason,
            )
        )
    return tuple(out)


def _entities(registry: Iterable[Registered]) -> list[dict[str, Any]]:
    parties: set[str] = set()
    out: list[dict[str, Any]] = []
    for reg in registry:
        a = reg.agreement
        parties |= {a.provider, a.recipient}
        out.append(
            {
                "uid": {"type": "Accord::Agreement", "id": a.id},
                "attrs": {
                    "status": reg.status.value,
                    "provider": {"__entity": {"type": "Accord::Party", "id": a.provider}},
                    "recipient": {"__entity": {"type": "Accord::Party", "id": a.recipient}},
                },
                "parents": [],
            }
        )
        out.extend(
            {
                "uid": {"type": "Accord::Clause", "id": clause_uid(a.id, c.id)},
                "attrs": {},
                "parents": [{"type": "Accord::Agreement", "id": a.id}],
            }
            for c in a.clauses
        )
    out.extend(
        {"uid": {"type": "Accord::Party", "id": p}, "attrs": {}, "parents": []}
        for p in sorted(parties)
    )
    return out


class Policy:
    """The compiled policies of a registry of agreements, ready to decide requests."""

    def __init__(self, registry: Iterable[Registered], law: Sequence[RequestRule] = LAW) -> None:
        self.registry: dict[str, Registered] = {r.agreement.id: r for r in registry}
        self.compiled = compile_policies(self.registry.values(), law)
        self.text = "\n\n".join(f"@id({_lit(p.id)})\n{p.text}" for p in self.compiled)
        # Cedar names policies policy0, policy1, ... in the order they are parsed.
        self._by_cedar_id = {f"policy{i}": p for i, p in enumerate(self.compiled)}
        self._kinds: dict[tuple[Any, ...], _Kind] = {}
        self._deciding: dict[
            tuple[str, ...], tuple[tuple[CompiledPolicy, ...], tuple[str, ...]]
        ] = {}
        self._heads: dict[tuple[str, Operation, str, str], dict[str, Any]] = {}
        self._answers: dict[tuple[Any, ...], Any] = {}
        self._allowing: dict[tuple[Any, ...], _Allowing] = {}
        """What an allowed decision holds besides the request, by shape (:func:`_allowing_key`)."""
        """Cedar's answers by request shape (:meth:`_shape`)."""
        # Every instant a policy compares ``context.now`` with (compile_policies): the agreements'
        # validity dates, whether in force or not (a superset is safe: only finer).
        self._instants = sorted(
            {
                _epoch(day)
                for reg in self.registry.values()
                for day in (reg.agreement.valid_from, reg.agreement.valid_until)
            }
        )
        self._clauses = {
            (reg.agreement.id, c.id): (reg.agreement, c)
            for reg in self.registry.values()
            for c in reg.agreement.clauses
        }
        with translate(PolicyError, "compiling the Cedar policies"):
            result = cedarpy.validate_policies(self.text, SCHEMA)
            if not result.validation_passed:
                raise PolicyError(f"compiled policies do not match the schema: {result}")
            self.policy_set = cedarpy.PolicySet.from_str(self.text)
            self.schema = cedarpy.Schema.from_str(SCHEMA)
            self.entities = cedarpy.Entities.from_json_str(
                json.dumps(_entities(self.registry.values()))
            )

    # -- requests ------------------------------------------------------------------------------

    def cedar_request(self, request: Request) -> dict[str, Any]:
        """The Cedar request for ``request`` (principal, action, resource, context)."""
        head_key = (request.requester, request.operation, request.agreement, request.clause)
        head = self._heads.get(head_key)
        if head is None:
            head = self._heads[head_key] = {
                "principal": {"type": "Accord::Party", "id": request.requester},
                "action": {"type": "Accord::Action", "id": request.operation.value},
                "resource": {
                    "type": "Accord::Clause",
                    "id": clause_uid(request.agreement, request.clause),
                },
            }
        return {
            **head,
            "context": {
                "purpose": request.purpose,
                "categories": sorted(request.categories),
                "fields": sorted(request.fields),
                "now": int(request.at.timestamp()),
                "delegated": request.delegated,
                "relative": request.subjects.relative,
                "for_anchor": request.subjects.anchor is not None
                and request.subjects.anchor == request.on_behalf_of,
            },
        }

    def decide(self, request: Request) -> Decision:
        """Decide one request."""
        shape = self._shape(request)
        allowing = self._allowing.get(_allowing_key(shape, request))
        if allowing is not None:
            return self._allowed(request, allowing)
        return self.decide_batch([request])[0]

    def decide_batch(self, requests: Sequence[Request]) -> list[Decision]:
        """Decide many requests with one call into Cedar (none for a request whose shape Cedar
        has already answered: see :meth:`_shape`)."""
        if not requests:
            return []
        shapes = [self._shape(r) for r in requests]
        answers = self._answers
        missing = {
            shape: r for shape, r in zip(shapes, requests, strict=True) if shape not in answers
        }
        if missing:
            cedar_requests = [self.cedar_request(r) for r in missing.values()]
            with translate(PolicyError, "evaluating the Cedar policies"):
                results = cedarpy.is_authorized_batch(
                    cedar_requests, self.policy_set, self.entities, self.schema
                )
            if len(answers) + len(missing) > _ANSWERS_KEPT:
                answers.clear()  # unusual shapes cannot grow it for ever
            answers.update(zip(missing, results, strict=True))
            found = dict(zip(missing, results, strict=True))
        else:
            found = {}
        return [
            self._decision(r, found[shape] if shape in found else answers[shape], shape)
            for r, shape in zip(requests, shapes, strict=True)
        ]

    def _shape(self, request: Request) -> tuple[Any, ...]:
        """Everything Cedar's answer to ``request`` depends on, in this policy.

        Cedar reads the request's principal, action, resource and context, this policy's
        policies and entities (its registry's, fixed for its life: a registry revision builds a
        new :class:`Policy`), and nothing else: no person, no consent, no opt-out (those are the
        person filter's, judged by the store at every request). Of the context, ``now`` is
        compared only with the agreements' validity dates (``_instants``), so it is kept as
        how many of those instants it has reached: two requests alike but for ``now`` get the
        same answer unless an agreement starts or ends between them.
        """
        return (
            request.requester,
            request.operation,
            request.agreement,
            request.clause,
            request.purpose,
            request.categories,
            request.fields,
            request.delegated,
            request.subjects.relative,
            request.subjects.anchor is not None and request.subjects.anchor == request.on_behalf_of,
            bisect_right(self._instants, int(request.at.timestamp())),
        )

    # -- decisions ------------------------------------------------------------------------------

    def _decision(self, request: Request, result: Any, shape: tuple[Any, ...]) -> Decision:
        diagnostics = result.diagnostics
        if diagnostics.errors:
            # Fail closed: an evaluation error never allows anything.
            return Decision(
                request,
                False,
                ("policy:error",),
                "the policy engine could not evaluate this request: "
                + "; ".join(str(e) for e in diagnostics.errors),
            )
        reasons = tuple(diagnostics.reasons)
        known = self._deciding.get(reasons)
        if known is None:
            deciding = tuple(self._by_cedar_id[pid] for pid in reasons)
            known = self._deciding[reasons] = (deciding, tuple(p.id for p in deciding))
        deciding, rule_ids = known
        if not result.allowed:
            if deciding:
                return Decision(
                    request,
                    False,
                    rule_ids,
                    "Refused: " + "; ".join(p.reason for p in deciding) + ".",
                )
            rule, reason = self.explain_refusal(request)
            return Decision(request, False, (rule,), f"Refused: {reason}.")
        found = self._clauses.get((request.agreement, request.clause))
        if found is None:  # pragma: no cover - Cedar permitted a clause that is not registered
            return Decision(request, False, ("policy:error",), "clause vanished")
        agreement, clause = found
        kind = self._kind(agreement, clause, request)
        sentence = kind.sentences.get(reasons)
        if sentence is None:
            sentence = kind.sentences[reasons] = _allow_reason(
                deciding, self._filter(request, kind)
            )
        allowing = _Allowing(kind, rule_ids, sentence, clause)
        if len(self._allowing) >= _ANSWERS_KEPT:
            self._allowing.clear()
        self._allowing[_allowing_key(shape, request)] = allowing
        return self._allowed(request, allowing)

    @staticmethod
    def _filter(request: Request, kind: _Kind) -> PersonFilter:
        """The person filter of an allowed ``request`` of ``kind``."""
        rules = kind.rules
        if kind.personal:
            # Only the rules that exempt the requester change; the others (every place's opt-out
            # rule, say) are reused as they are.
            asking = request.requester_person
            filled = list(rules)
            for i in kind.personal:
                filled[i] = replace(filled[i], exempt=asking)
            rules = tuple(filled)
        return PersonFilter(
            at=request.at,
            controller=kind.controller,
            regions=kind.regions,
            rules=rules,
            subjects=_subjects(request.subjects),
            group=kind.group,
            regions_reason=kind.outside,
        )

    def _allowed(self, request: Request, allowing: _Allowing) -> Decision:
        """The decision allowing ``request``, whose shape Cedar allowed (see :class:`_Allowing`)."""
        return Decision(
            request,
            True,
            allowing.rule_ids,
            allowing.sentence,
            fields=request.fields or allowing.clause.fields,
            filter=self._filter(request, allowing.kind),
            clause=allowing.clause,
        )

    def _kind(self, agreement: Agreement, clause: Clause, request: Request) -> _Kind:
        # What the law and the clause ask of each person depends neither on the instant nor on
        # who the requester is (only on whether there is one), so it is worked out once per kind
        # of request and reused.
        asking = request.requester_person
        key = (
            agreement.id,
            clause.id,
            request.operation,
            request.purpose,
            request.categories,
            request.title,
            asking is not None,
            request.subjects.relative,
        )
        kind = self._kinds.get(key)
        if kind is None:
            controller, rules, group = _person_rules(
                agreement,
                clause,
                operation=request.operation,
                purpose=request.purpose,
                categories=request.categories,
                title=request.title,
                requester_person=_REQUESTER if asking is not None else None,
                relative=request.subjects.relative,
            )
            kind = self._kinds[key] = _Kind(
                controller=controller,
                rules=rules,
                group=group,
                regions=clause.region_set,
                personal=tuple(i for i, r in enumerate(rules) if r.exempt == _REQUESTER),
                outside=f"lives outside the regions of clause {clause.id}",
            )
        return kind

    def explain_refusal(self, request: Request) -> tuple[str, str]:
        """Why no clause permits ``request``: the first condition it fails, as (rule, sentence).

        This restates in Python the conditions compiled into each permit policy; a test holds it
        to agree with Cedar's verdict.
        """
        reg = self.registry.get(request.agreement)
        if reg is None:
            return "agreement:unknown", (
                f"there is no agreement {request.agreement!r}; nothing flows without a published "
                "agreement"
            )
        a = reg.agreement
        blocked = reg.why_not_in_force(a.valid_from)
        if blocked is not None:
            return f"lifecycle:{a.id}", blocked
        clause = a.clause(request.clause)
        if clause is None:
            known = ", ".join(c.id for c in a.clauses)
            return "clause:unknown", f"agreement {a.id} has no clause {request.clause!r} ({known})"
        on = request.at.date()
        if on < a.valid_from:
            return "agreement:dates", f"agreement {a.id} is valid only from {a.valid_from}"
        if on >= a.valid_until:
            return "agreement:dates", f"agreement {a.id} expired on {a.valid_until}"
        op = request.operation
        if op not in clause.operations:
            allowed = " or ".join(sorted(o.value for o in clause.operations))
            return "clause:operation", (f"clause {clause.id} allows only {allowed}, not {op.value}")
        party = acting_party(a, clause, op)
        if request.requester != party:
            return "clause:party", (
                f"under clause {clause.id} only {party} may {op.value}; {request.requester} may not"
            )
        if not clause.covers_purpose(request.purpose):
            return "clause:purpose", (
                f"purpose {request.purpose} is not among the purposes of clause {clause.id} "
                f"({', '.join(sorted(clause.purposes))}): purpose limitation, GDPR Art. 5(1)(b)"
            )
        outside = sorted(c for c in request.categories if not clause.covers_category(c))
        if outside:
            return "clause:categories", (f"clause {clause.id} does not cover {', '.join(outside)}")
        extra = sorted(request.fields - clause.fields) if clause.fields else []
        if extra:
            return "clause:fields", (
                f"clause {clause.id} does not list the fields {', '.join(extra)}: only what the "
                "purpose needs may cross"
            )
        return "policy:default-deny", "no policy permits this request"


def _allow_reason(deciding: Sequence[CompiledPolicy], person_filter: PersonFilter) -> str:
    head = "Allowed: " + "; ".join(p.reason for p in deciding)
    conditions = (
        []
        if person_filter.regions.everywhere
        else [f"they live in {person_filter.regions.describe()}"]
    )
    for rule in person_filter.rules:
        phrase = _RULE_PHRASES.get(rule.id, "they have consented to it")
        if phrase not in conditions:
            conditions.append(phrase)
    if not conditions:
        return head + "."
    return f"{head}; each person's data only where {'; '.join(conditions)}."


_RULE_PHRASES = {
    vppa.RULE_ID: "US viewers have given VPPA consent",
    sca.READ_RULE_ID: "every participant in a thread has consented",
    sca.SEND_RULE_ID: "the sender has consented to sending",
    gdpr.RULE_ID: "people under the GDPR gave a distinct consent to this purpose",
    friends.RULE_ID: "everyone but the requester has consented themselves",
    **dict.fromkeys(
        sorted(optout.RULE_IDS),
        "no opt-out of sale or sharing, objection to direct marketing or GPC signal is in force",
    ),
}


def _subjects(subjects: Subjects) -> frozenset[str] | None:
    return subjects.people if subjects.kind is SubjectsKind.PEOPLE else None


@dataclass(slots=True)
class _Kind:
    """What a kind of request asks of each person, worked out once (see ``Policy._kind``)."""

    controller: str
    rules: tuple[Rule, ...]
    group: Group
    regions: Jurisdictions
    personal: tuple[int, ...]
    """Where in ``rules`` the rules that exempt the requester are (empty: none do)."""
    outside: str
    sentences: dict[tuple[str, ...], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Allowing:
    """What a decision allowing a request holds besides the request itself (its instant, its
    people, the person it is made for): the same for every request of one shape, as Cedar
    answers it (``Policy._shape``) and as the person rules are worked out (``Policy._kind``)."""

    kind: _Kind
    rule_ids: tuple[str, ...]
    sentence: str
    clause: Clause


def _allowing_key(shape: tuple[Any, ...], request: Request) -> tuple[Any, ...]:
    """Cedar's shape of ``request`` and what else its person rules depend on (``Policy._kind``:
    the title, and whether a person asks; the rest of its key is in the shape)."""
    return (shape, request.title, request.requester_person is not None)


# Stands for the person a request is made for, in cached rules; filled in per request.
_REQUESTER = "\x00requester"


def _person_rules(
    agreement: Agreement,
    clause: Clause,
    *,
    operation: Operation,
    purpose: str,
    categories: frozenset[str],
    title: str | None,
    requester_person: str | None,
    relative: bool,
) -> tuple[str, tuple[Rule, ...], Group]:
    """(controller, rules, group) for a request: what law and clause ask of each person."""
    d = Disclosure(
        source=agreement.sender_of(clause),
        destination=agreement.receiver_of(clause),
        operation=operation,
        purpose=purpose,
        categories=categories,
        at=datetime.min.replace(tzinfo=UTC),
        legal_basis=clause.legal_basis,
        clause_needs_consent=clause.consent_needed,
        title=title,
        requester_person=requester_person,
        relative=relative,
        aggregate=clause.granularity is Granularity.AGGREGATE,
    )
    d = replace(d, subjects_at=sca.subjects_at(d))
    rules: list[Rule] = []
    if clause.consent_needed:
        rules.extend(
            Rule(
                id=f"clause:{agreement.id}/{clause.id}:consent",
                reason=(
                    f"has not consented to {d.counterparty} using their {category} for {purpose}"
                ),
                requirement=ConsentNeed(
                    recipient=d.counterparty,
                    purpose=purpose,
                    category=category,
                    operation=operation,
                    title=title,
                ),
            )
            for category in sorted(categories)
        )
    for module in (vppa, sca, gdpr, optout, friends):
        rules.extend(module.person_rules(d))
    return d.controller, tuple(rules), sca.group(d)
