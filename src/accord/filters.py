"""The per-person filter: which people's data a decision lets through, as a set-based specification.

A :class:`PersonFilter` is what :func:`accord.policy.decide` returns beside its verdict. It is a
small, closed language that a store turns into one SQL query (``EXISTS`` sub-queries over the
consent and opt-out tables, ``IN`` lists over jurisdictions), so a decision about a million
people is one query, never one policy call per person. :meth:`PersonFilter.judge` evaluates the
same specification in Python; it is the reference the SQL is tested against.

A person is let through when
  * their jurisdiction is in ``regions`` (the clause's regions), and
  * they are one of ``subjects`` when the request named people, and
  * every :class:`Rule` whose ``applies_to`` contains their jurisdiction, and whose ``exempt``
    is not them, is satisfied:
      - :class:`ConsentNeed`: some consent of theirs is in force at ``at``, is for the recipient,
        covers the purpose, the category and the operation, is distinct and separate where
        required, was given less than ``max_years`` before ``at`` where there is such a cap, does
        not exclude ``title``, and, if it covers one disclosure only, names ``title``;
      - :class:`NoOptOut`: no opt-out of that kind of theirs is in force at ``at``.
With ``group == EVERY_PARTICIPANT`` a record that concerns several people (a message thread) is
let through only if every one of them is.

A need without a title is met by ongoing consents only, whatever titles they exclude: it judges a
person, not a title. Rows that carry a title are judged per (person, title) on top of it, with
each need's title taken as the row's (:mod:`accord.store.title_sql`); a consent for one disclosure
that a release relied on is spent, and the store no longer counts it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from accord.consent import Consent, Operation, OptOut, OptOutKind, PersonFacts, years_before
from accord.jurisdictions import EVERYWHERE, Jurisdictions


class Group(StrEnum):
    """How records about several people are judged."""

    EACH = "each"
    EVERY_PARTICIPANT = "every_participant"


@dataclass(frozen=True, slots=True)
class ConsentNeed:
    """A consent that must be in force for the person (see the module docstring)."""

    recipient: str
    purpose: str
    category: str
    operation: Operation = Operation.READ
    distinct_and_separate: bool = False
    max_years: int | None = None
    title: str | None = None

    def given_after(self, at: datetime) -> datetime | None:
        """Consents given at or before this instant are too old (the ``max_years`` cap)."""
        return None if self.max_years is None else years_before(at, self.max_years)

    def met_by(self, consent: Consent, at: datetime) -> bool:
        """Whether ``consent`` meets this need at ``at``."""
        oldest = self.given_after(at)
        return (
            consent.in_force_at(at)
            and consent.covers(
                recipient=self.recipient,
                purpose=self.purpose,
                category=self.category,
                operation=self.operation,
            )
            and (consent.distinct_and_separate or not self.distinct_and_separate)
            and (oldest is None or consent.given_at > oldest)
            and consent.allows_title(self.title)
        )


@dataclass(frozen=True, slots=True)
class NoOptOut:
    """No opt-out of ``kind`` may be in force for the person."""

    kind: OptOutKind = OptOutKind.SALE_SHARING

    def met_by(self, opt_outs: Iterable[OptOut], at: datetime) -> bool:
        """Whether none of ``opt_outs`` of this kind is in force at ``at``."""
        return not any(o.kind is self.kind and o.in_force_at(at) for o in opt_outs)


@dataclass(frozen=True, slots=True)
class Rule:
    """One condition a person must meet, where it applies, and why (a sentence for a person)."""

    id: str
    reason: str
    requirement: ConsentNeed | NoOptOut
    applies_to: Jurisdictions = EVERYWHERE
    exempt: str | None = None

    def applies(self, facts: PersonFacts) -> bool:
        """Whether this rule binds ``facts.person``."""
        return facts.person.id != self.exempt and self.applies_to.contains(
            facts.person.jurisdiction
        )

    def met(self, facts: PersonFacts, at: datetime) -> bool:
        """Whether ``facts`` meets the requirement at ``at`` (regardless of whether it applies)."""
        req = self.requirement
        if isinstance(req, NoOptOut):
            return req.met_by(facts.opt_outs, at)
        return any(req.met_by(c, at) for c in facts.consents)


REGION_RULE = "clause:regions"
SUBJECT_RULE = "request:subjects"


@dataclass(frozen=True, slots=True)
class PersonFilter:
    """Who may be released: see the module docstring for the exact meaning."""

    at: datetime
    controller: str
    regions: Jurisdictions = EVERYWHERE
    rules: tuple[Rule, ...] = ()
    subjects: frozenset[str] | None = None
    group: Group = Group.EACH
    regions_reason: str = "lives outside the regions the clause covers"

    def judge(self, facts: PersonFacts) -> tuple[str, ...]:
        """The ids of the rules ``facts.person`` fails; empty means they are let through."""
        failed: list[str] = []
        if self.subjects is not None and facts.person.id not in self.subjects:
            failed.append(SUBJECT_RULE)
        if not self.regions.contains(facts.person.jurisdiction):
            failed.append(REGION_RULE)
        failed.extend(
            rule.id for rule in self.rules if rule.applies(facts) and not rule.met(facts, self.at)
        )
        return tuple(failed)

    def admits(self, facts: PersonFacts) -> bool:
        """Whether ``facts.person`` is let through."""
        return not self.judge(facts)

    def admits_group(self, members: Iterable[PersonFacts]) -> bool:
        """Whether a record about all of ``members`` is let through under ``group``."""
        verdicts = [self.admits(m) for m in members]
        if self.group is Group.EVERY_PARTICIPANT:
            return bool(verdicts) and all(verdicts)
        return any(verdicts)

    def allowed(self, population: Iterable[PersonFacts]) -> frozenset[str]:
        """The ids of the people in ``population`` let through (reference; stores use SQL)."""
        return frozenset(f.person.id for f in population if self.admits(f))

    def reason_for(self, rule_id: str) -> str:
        """The sentence for a failed rule id."""
        if rule_id == REGION_RULE:
            return self.regions_reason
        if rule_id == SUBJECT_RULE:
            return "was not one of the people the request named"
        for rule in self.rules:
            if rule.id == rule_id:
                return rule.reason
        return rule_id
