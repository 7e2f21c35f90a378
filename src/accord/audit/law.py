"""The auditor's own reading of the law: who a release may be about, person by person.

This is an oracle written from the statutes and the agreement, in plain loops, apart from the
gateway's compiled rules (Cedar, the per-person filter and its SQL): if both say the same of every
release, both are right or both are wrong the same way, and the second is much less likely.

A release may be about a person only when all of this holds at the instant of the release:

* **The agreement and clause** (the published terms): the agreement is active, reviewed and
  approved in the version in force, within its dates; the clause exists, allows the operation,
  the party acting is the one the clause names, the purpose is among the clause's purposes (GDPR
  Art. 5(1)(b), purpose limitation), the categories and fields among the clause's, and the
  granularity is the clause's.
* **The region**: the person lives where the clause lets data flow from.
* **Erasure**: a person erased is never released again (GDPR Art. 17; Accord's erasure flow).
* **Consent**, where the clause needs it: a consent of the person's own, to this recipient, for
  this purpose, category and operation, in force at the release (given, not expired, not
  withdrawn), that does not exclude the title and, if given for one disclosure, is for this title
  and not used before.
* **GDPR** (Art. 6(1)(a), Art. 7(2)): under consent as the lawful basis, a person in the EEA or the
  UK needs such a consent asked for apart from other matters (distinct and separate).
* **VPPA** (18 U.S.C. 2710(b)(2)(B)): a US viewer's viewing history (a field of
  ``user.behavior.media_consumption``, released record by record) needs a consent that is distinct
  and separate (i), given at the time or in advance for at most two years and not withdrawn (ii),
  for this title (case-by-case withdrawal, (iii)); a one-disclosure consent is for its title, once.
* **SCA house rule** (18 U.S.C. 2702(b)(3), stricter): message contents are read only in threads
  where every participant consented (judged over the thread by :mod:`accord.audit.replay`); a
  message is sent on a person's behalf only with that person's own consent to sending.
* **Friends' data**: data about anyone but the person acting on their own behalf needs that
  person's own consent, even where the clause needs none from the person acting.
* **Opt-outs** (Cal. Civ. Code 1798.120 and 1798.135, 11 CCR 7025; the state laws that honour
  opt-out signals; GDPR Art. 21(2)-(3) and (5) for direct marketing; Accord's own rule
  elsewhere): a person with a sale/sharing opt-out in force, from a form or ``Sec-GPC: 1``, is
  left out of every partner flow for marketing (advertising of any kind, and marketing messages:
  Art. 21(2) covers direct marketing as a whole), wherever they live.

Nothing here does I/O. Records come in as :class:`~accord.consent.Consent` and
:class:`~accord.consent.OptOut` (plain data); the agreement as
:class:`~accord.agreements.Agreement`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from accord.agreements import Agreement, Clause
from accord.consent import Consent, Operation, OptOut, OptOutKind, Scope, add_years
from accord.jurisdictions import EEA, country

MEDIA = "user.behavior.media_consumption"
PRIVATE = "user.content.private"
MARKETING = "marketing"
GDPR_COUNTRIES = EEA | {"GB"}
"""Where the GDPR protects people: the EEA (Art. 3, EEA Agreement Annex XI) and the UK (UK GDPR)."""
VPPA_YEARS = 2
"""18 U.S.C. 2710(b)(2)(B)(ii)(II): consent given in advance lasts at most two years."""

VPPA = "18 U.S.C. 2710(b)(2)(B)"
SCA = "18 U.S.C. 2702(b)(3)"
GDPR_CONSENT = "GDPR Art. 6(1)(a), Art. 7(2)"
OPT_OUT = "Cal. Civ. Code 1798.120, 1798.135; 11 CCR 7025; GDPR Art. 21(2)-(3); Accord's rule"


def under(key: str, general: str) -> bool:
    """Whether taxonomy key ``key`` is ``general`` or lies below it."""
    return key == general or key.startswith(general + ".")


def under_any(key: str, generals: Iterable[str]) -> bool:
    """Whether ``key`` is or lies below any of ``generals``."""
    return any(under(key, g) for g in generals)


@dataclass(frozen=True, slots=True)
class Person:
    """What the auditor knows of one person at the party holding their data."""

    id: str
    party: str
    jurisdiction: str | None
    """Where the party holding them says they live; ``None`` if it does not know them."""
    consents: tuple[Consent, ...] = ()
    opt_outs: tuple[OptOut, ...] = ()
    known: bool = True
    """Whether the Accord store knows the person (an erased person's records are gone)."""
    erased: bool = False
    """Whether the party erased the person (its suppression list). The list holds no time, and
    needs none: an erased person's key is gone, so only a release after the erasure could be
    tied to them again."""


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One release as the auditor reads it from the ledger and the registry."""

    at: datetime
    agreement: Agreement | None
    in_force: str | None
    """Why the agreement did not permit anything at the release, or ``None`` if it did."""
    clause_id: str | None
    provider: str
    recipient: str
    controller: str
    """The party whose people the release is about (whose consents count)."""
    operation: Operation
    purpose: str
    categories: frozenset[str]
    fields: frozenset[str] = frozenset()
    field_categories: frozenset[str] = frozenset()
    granularity: str = "record"
    title: str | None = None
    acting: str | None = None
    """The person on whose behalf the recipient acted, if known (exempt from the friends rule)."""
    relative: bool = False
    """Whether the people asked about were named by their relation to a person."""

    @property
    def clause(self) -> Clause | None:
        """The clause the release names, if the agreement has it."""
        if self.agreement is None or self.clause_id is None:
            return None
        return self.agreement.clause(self.clause_id)

    @property
    def counterparty(self) -> str:
        """The party the people's consent must name."""
        return self.recipient if self.controller == self.provider else self.provider

    @property
    def advertising(self) -> bool:
        """Whether the purpose is marketing, advertising included (opt-outs of sale and sharing
        bar it)."""
        return under(self.purpose, MARKETING)

    @property
    def viewing(self) -> bool:
        """Whether what crossed identifies what a person watched, record by record (VPPA)."""
        if self.granularity == "aggregate":
            return False  # counts over groups of at least k identify nobody: 2710(a)(3)
        kinds = self.field_categories or self.categories
        return any(under(c, MEDIA) or under(MEDIA, c) for c in kinds)

    @property
    def messages(self) -> bool:
        """Whether message contents crossed (the SCA)."""
        return any(under(c, PRIVATE) or under(PRIVATE, c) for c in self.categories)


def release_problems(d: Disclosure) -> list[str]:
    """Why the agreement or clause did not allow this release at all (empty if they did)."""
    a = d.agreement
    if a is None:
        return ["no agreement by this id is registered: nothing flows without a published one"]
    problems = []
    if d.in_force is not None:
        problems.append(d.in_force)
    clause = d.clause
    if clause is None:
        return [*problems, f"agreement {a.id} has no clause {d.clause_id!r}"]
    sender = a.provider if clause.direction.value == "provider_to_recipient" else a.recipient
    receiver = a.recipient if sender == a.provider else a.provider
    if (d.provider, d.recipient) != (sender, receiver):
        problems.append(
            f"clause {clause.id} moves data from {sender} to {receiver}, not from {d.provider} "
            f"to {d.recipient}"
        )
    if d.operation not in clause.operations:
        problems.append(f"clause {clause.id} does not allow {d.operation.value}")
    if not under_any(d.purpose, clause.purposes):
        problems.append(
            f"purpose {d.purpose} is not a purpose of clause {clause.id}: purpose limitation, "
            "GDPR Art. 5(1)(b)"
        )
    outside = sorted(c for c in d.categories if not under_any(c, clause.categories))
    if outside:
        problems.append(f"clause {clause.id} does not cover {', '.join(outside)}")
    if clause.fields and not d.fields <= clause.fields:
        extra = sorted(d.fields - clause.fields)
        problems.append(f"clause {clause.id} does not list the fields {', '.join(extra)}")
    # The ledger writes "match-only" for the clause's "match_only".
    if d.granularity.replace("-", "_") != clause.granularity.value:
        problems.append(
            f"clause {clause.id} releases {clause.granularity.value}s, not {d.granularity}s"
        )
    return problems


@dataclass(frozen=True, slots=True)
class Need:
    """A consent the person must have: for which category and operation, and how strict."""

    rule: str
    category: str
    operation: Operation
    distinct: bool = False
    max_years: int | None = None
    why: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a person may be in a release (for a title), why not, and which one-disclosure
    consents it spends."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    spends: frozenset[str] = field(default_factory=frozenset)


def needs(d: Disclosure, person: Person) -> list[Need]:
    """The consents ``person`` needs for ``d``, each with the rule that asks for it."""
    clause = d.clause
    if clause is None or person.jurisdiction is None:
        return []
    out: list[Need] = []
    if clause.consent_needed:
        out += [
            Need("the clause", c, d.operation, why=f"the clause needs consent to {c}")
            for c in sorted(d.categories)
        ]
    home = country(person.jurisdiction)
    if clause.legal_basis.value == "consent" and home in GDPR_COUNTRIES:
        out += [
            Need(
                "GDPR",
                c,
                d.operation,
                distinct=True,
                why=f"{GDPR_CONSENT}: a consent to {c} asked for apart from other matters",
            )
            for c in sorted(d.categories)
        ]
    if d.viewing and home == "US":
        out.append(
            Need(
                "VPPA",
                MEDIA,
                d.operation,
                distinct=True,
                max_years=VPPA_YEARS,
                why=f"{VPPA}: a distinct and separate consent, given at most two years before",
            )
        )
    if d.messages:
        what = "reading their messages" if d.operation is Operation.READ else "sending for them"
        out.append(Need("SCA", PRIVATE, d.operation, why=f"{SCA}: their own consent to {what}"))
    friends = not clause.consent_needed and (d.relative or d.acting is not None)
    if friends and person.id != d.acting:
        out += [
            Need("friends", c, d.operation, why=f"a friend's own consent to {c}")
            for c in sorted(d.categories)
        ]
    return out


def _meets(
    c: Consent, need: Need, d: Disclosure, *, person: Person, title: str | None, spent: set[str]
) -> bool:
    at = d.at
    if c.person != person.id or c.controller != person.party or c.recipient != d.counterparty:
        return False
    if need.operation not in c.operations:
        return False
    if not under_any(d.purpose, c.purposes) or not under_any(need.category, c.categories):
        return False
    if c.given_at > at:
        return False
    if c.withdrawn_at is not None and c.withdrawn_at <= at:
        return False
    if c.expires_at is not None and c.expires_at <= at:
        return False
    if need.distinct and not c.distinct_and_separate:
        return False
    # Read as the statute puts it: the consent's set period ends max_years after it was given.
    if need.max_years is not None and add_years(c.given_at, need.max_years) <= at:
        return False
    if title is not None and title in c.excluded_titles:
        return False
    if c.scope is Scope.ONE_DISCLOSURE:
        return title is not None and title == c.disclosure and c.id not in spent
    return True


def _why_not(need: Need, d: Disclosure, person: Person, title: str | None) -> str:
    """The nearest miss among the person's consents, as a sentence."""
    at = d.at
    near = [
        c
        for c in person.consents
        if c.recipient == d.counterparty
        and under_any(d.purpose, c.purposes)
        and under_any(need.category, c.categories)
        and need.operation in c.operations
    ]
    if not near:
        return f"no consent: {need.why}"
    notes = []
    for c in near:
        if c.given_at > at:
            notes.append(f"consent {c.id} was given only later")
        elif c.withdrawn_at is not None and c.withdrawn_at <= at:
            notes.append(f"consent {c.id} was withdrawn at {c.withdrawn_at.isoformat()}")
        elif c.expires_at is not None and c.expires_at <= at:
            notes.append(f"consent {c.id} had expired")
        elif need.distinct and not c.distinct_and_separate:
            notes.append(f"consent {c.id} was bundled, not distinct and separate")
        elif need.max_years is not None and add_years(c.given_at, need.max_years) <= at:
            notes.append(f"consent {c.id} was given more than {need.max_years} years before")
        elif title is not None and title in c.excluded_titles:
            notes.append(f"consent {c.id} excludes title {title}")
        elif c.scope is Scope.ONE_DISCLOSURE and (title is None or title != c.disclosure):
            notes.append(f"consent {c.id} is for one disclosure of {c.disclosure} only")
        elif c.scope is Scope.ONE_DISCLOSURE:
            notes.append(f"consent {c.id} was for one disclosure, already made")
    return f"{need.why}; " + "; ".join(notes) if notes else f"no consent: {need.why}"


def judge(
    d: Disclosure,
    person: Person,
    title: str | None = None,
    spent: Iterable[str] = (),
    *,
    checked: bool = False,
) -> Verdict:
    """Whether ``person`` may be in ``d`` (for rows of ``title``, if given; else ``d.title``).

    ``spent`` are the ids of one-disclosure consents already used by earlier releases. The
    verdict's ``spends`` are the one-disclosure consents this one relies on (only where no
    ongoing consent would do). With ``checked``, the caller has found no
    :func:`release_problems` already (they are the same for everyone in a release).
    """
    title = title if title is not None else d.title
    used = set(spent)
    reasons: list[str] = []
    problems = [] if checked else release_problems(d)
    if problems:
        return Verdict(False, tuple(problems))
    clause = d.clause
    if clause is None:  # pragma: no cover - release_problems says so
        return Verdict(False, ("no such clause",))
    if person.erased:
        reasons.append(f"was erased by {person.party}: never released again (GDPR Art. 17)")
    if not person.known:
        reasons.append("is unknown to the Accord store (erased, or never recorded)")
    if person.jurisdiction is None:
        reasons.append(f"is unknown to {person.party}, which would say where they live")
        return Verdict(False, tuple(reasons))
    if not clause.region_set.contains(person.jurisdiction):
        reasons.append(f"lives in {person.jurisdiction}, outside the clause's regions")
    spends: set[str] = set()
    for need in needs(d, person):
        ongoing = [
            c
            for c in person.consents
            if c.scope is Scope.ONGOING
            and _meets(c, need, d, person=person, title=title, spent=used)
        ]
        if ongoing:
            continue
        single = [
            c
            for c in person.consents
            if c.scope is Scope.ONE_DISCLOSURE
            and _meets(c, need, d, person=person, title=title, spent=used)
        ]
        if single:
            spends.add(single[0].id)
            continue
        reasons.append(_why_not(need, d, person, title))
    if d.advertising:
        out = [
            o
            for o in person.opt_outs
            if o.kind is OptOutKind.SALE_SHARING
            and o.at <= d.at
            and (o.revoked_at is None or d.at < o.revoked_at)
        ]
        if out:
            reasons.append(
                f"opted out of sale and sharing ({out[0].source.value}) on "
                f"{out[0].at.date().isoformat()}, which bars marketing everywhere ({OPT_OUT})"
            )
    if reasons:
        return Verdict(False, tuple(dict.fromkeys(reasons)))
    return Verdict(True, (), frozenset(spends))
