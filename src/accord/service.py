"""Accord's registry service: agreements, consents and decisions over one store and its ledger.

This is what the CLI (and later the HTTP API) calls. Every change it makes is written to the
ledger in the same step: an agreement's lifecycle step, a consent given or withdrawn, and every
decision, refusals included. The ledger entry is durable before the call returns.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from accord import agreements as ag
from accord import request_deadline
from accord.config import Settings
from accord.consent import Consent, OptOut, OptOutKind, Person, utc
from accord.consent import Scope as ConsentScope
from accord.datafolder import DataFolder
from accord.errors import ConsentError, NotFound, StoreError, translate
from accord.law import gdpr, vppa
from accord.ledger.checkpoint import Signer
from accord.ledger.entries import (
    AgreementChangeEntry,
    ConsentChangeEntry,
    DecisionEntry,
)
from accord.ledger.log import Ledger, Receipt
from accord.policy import Decision, Policy
from accord.requests import Request
from accord.standing import PersonStanding, person_standing
from accord.store import filter_sql
from accord.store.driver import dispose, pooled_one
from accord.store.erased import suppressed_of, suppressed_refs
from accord.store.maintained import MaintainedAllowed
from accord.store.migrate import open_store
from accord.store.registry import REVISION_SQL, revision_seen
from accord.store.repositories import (
    AgreementRepository,
    ConsentRepository,
    OptOutRepository,
    Party,
    PartyRepository,
    PeopleRepository,
)


def person_ref(party: str, person: str) -> str:
    """How the ledger names a person: by their id at a party (pseudonymised before writing)."""
    return f"{party}/{person}"


def person_refs(party: str, people: Iterable[str]) -> tuple[str, ...]:
    """:func:`person_ref` of each of ``people``, at once: a release may be about millions."""
    prefix = f"{party}/"
    return tuple([prefix + person for person in people])


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decision, who it lets through, who it keeps out and why, and its ledger receipt."""

    decision: Decision
    allowed_people: int = 0
    considered_people: int = 0
    withheld: dict[str, int] = field(default_factory=dict)
    receipt: Receipt | None = None


class Accord:
    """One Accord store and its ledger."""

    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        ledger: Ledger,
        folder: Path | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.ledger = ledger
        self.folder = folder
        """The data folder it was opened with (:meth:`open`), if any."""
        if ledger.suppressed is None:
            # No entry after an erasure may give the erased person a new key.
            ledger.suppressed = suppressed_refs
        self._policy: tuple[int, Policy] | None = None
        self.allowed = MaintainedAllowed(engine)
        """Each bulk filter's allowed people, kept between requests; every change below to a
        person's standing goes through :meth:`MaintainedAllowed.changing`."""

    @classmethod
    @contextmanager
    def open(
        cls,
        database_url: str | None = None,
        data_dir: Path | None = None,
        *,
        existing: bool = False,
        migrate: bool = True,
    ) -> Iterator[Accord]:
        """Open (and migrate) the store; the ledger signs with the key in the data folder.

        ``data_dir`` moves the store and the key together (:mod:`accord.datafolder`);
        ``database_url`` puts the store elsewhere. With ``existing``, for commands that only
        read, an embedded store that is not there is an error rather than a new empty store.
        ``migrate=False`` opens a store another process has just migrated (and whose key it has
        made), as each of ``accord serve``'s workers does.
        """
        settings = Settings()
        folder, named = DataFolder.of_settings(settings, database_url, data_dir)
        url = folder.existing_store_url(named) if existing else folder.store_url(named)
        engine, sessions = open_store(url, migrate=migrate)
        try:
            signer = Signer.load_or_create(folder.path)
            yield cls(
                engine,
                sessions,
                Ledger(engine, signer, batch_size=settings.ledger_batch_size),
                folder.path,
            )
        finally:
            dispose(engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any error, or when the request it
        serves was answered 503 at its deadline meanwhile (:mod:`accord.request_deadline`):
        nothing a caller was told did not happen is stored."""
        with self.sessions() as session, session.begin():
            yield session
            request_deadline.check()

    # -- parties and people -------------------------------------------------------------------

    def add_party(self, party_id: str, name: str | None = None) -> Party:
        """Register a party, or return it if it exists."""
        with self.session() as s:
            return PartyRepository(s).ensure(Party(party_id, name or party_id))

    def add_people(self, people: list[Person]) -> int:
        """Record (or update) people and their jurisdictions."""
        by_party: dict[str, set[str]] = {}
        for p in people:
            by_party.setdefault(p.party, set()).add(p.id)
        with self.session() as s, ExitStack() as changing:
            for party, ids in by_party.items():
                changing.enter_context(self.allowed.changing(s, party, ids))
            return PeopleRepository(s).upsert_many(people)

    # -- agreements ----------------------------------------------------------------------------

    def register(self, document: str, *, source: str, by: str) -> ag.Registered:
        """Parse and register an agreement document as a draft."""
        agreement = ag.parse(document, source=source)
        with self.session() as s:
            parties = PartyRepository(s)
            for party in (agreement.provider, agreement.recipient):
                parties.ensure(Party(party, party))
            before = _status_or_none(AgreementRepository(s), agreement.id)
            reg = AgreementRepository(s).register(agreement, document, by=by)
        self._changed(reg, before, by, "registered")
        return reg

    def agreements(self) -> list[ag.Registered]:
        """Every registered agreement."""
        with self.session() as s:
            return AgreementRepository(s).list()

    def agreement(self, agreement_id: str) -> ag.Registered:
        """One registered agreement."""
        with self.session() as s:
            return AgreementRepository(s).get(agreement_id)

    def review(
        self,
        agreement_id: str,
        *,
        reviewer: str,
        findings: str,
        approved: bool,
        on: date | None = None,
    ) -> ag.Registered:
        """Record a privacy review: approve (→ approved) or send back (→ draft)."""
        with self.session() as s:
            repo = AgreementRepository(s)
            reg = repo.get(agreement_id)
            before = reg.status
            now = datetime.now(UTC)
            if reg.status is ag.Status.DRAFT:
                reg = ag.advance(reg, ag.Status.IN_REVIEW, at=now, by=reviewer)
            review = ag.Review(
                reviewer, on or now.date(), findings, approved, reg.agreement.version
            )
            if approved:
                reg = ag.advance(reg, ag.Status.APPROVED, at=now, by=reviewer, review=review)
            else:
                reg = ag.advance(
                    reg, ag.Status.DRAFT, at=now, by=reviewer, note=f"review: {findings}"
                )
            reg = repo.save(reg)
        self._changed(reg, before, reviewer, findings)
        return reg

    def move(self, agreement_id: str, to: ag.Status, *, by: str, note: str = "") -> ag.Registered:
        """Move an agreement in its lifecycle (activate, suspend, resume, end)."""
        with self.session() as s:
            repo = AgreementRepository(s)
            reg = repo.get(agreement_id)
            before = reg.status
            reg = repo.save(ag.advance(reg, to, at=datetime.now(UTC), by=by, note=note))
        self._changed(reg, before, by, note or f"moved to {to.value}")
        return reg

    def _changed(self, reg: ag.Registered, before: ag.Status | None, by: str, note: str) -> None:
        self._policy = None
        self.ledger.append(
            [
                AgreementChangeEntry(
                    agreement=reg.agreement.id,
                    reason=f"agreement {reg.agreement.id} version {reg.agreement.version}: "
                    f"{before.value if before else 'new'} → {reg.status.value} ({note})",
                    from_status=before.value if before else None,
                    to_status=reg.status.value,
                    actor=by,
                )
            ]
        )

    # -- consent -------------------------------------------------------------------------------

    def grant(self, consent: Consent) -> Consent:
        """Record a consent; under the GDPR it must be demonstrable (Art. 7) or it is refused.

        The person must be one the controller holds: where they live comes from the controller's
        own records (:meth:`add_people`), never from a consent, whose jurisdiction says only
        where it was collected.
        """
        with self.session() as s:
            PartyRepository(s).require(
                {consent.controller, consent.recipient}, needed_for=f"consent {consent.id}"
            )
            person = self._holder_of(s, consent)
            problems = gdpr.consent_problems(consent, lives_in=person.jurisdiction)
            if problems:
                raise ConsentError(
                    "cannot be accepted under the GDPR: " + "; ".join(problems),
                    where=f"consent {consent.id}",
                )
            with self.allowed.changing(s, consent.controller, [consent.person]):
                ConsentRepository(s).add(consent)
        self.ledger.append([_given(consent)])
        return consent

    def withdraw(
        self, consent_id: str, at: datetime | None = None
    ) -> tuple[Consent, gdpr.Obligations]:
        """Withdraw a consent; returns it and what the GDPR then requires (erase, notify)."""
        when = utc(at) if at else datetime.now(UTC)
        with self.session() as s:
            repo = ConsentRepository(s)
            held = repo.get(consent_id)
            with self.allowed.changing(s, held.controller, [held.person]):
                consent = repo.withdraw(consent_id, when)
            home = PeopleRepository(s).get_many(consent.controller, [consent.person])
        lives_in = home[consent.person].jurisdiction if consent.person in home else None
        duty = gdpr.on_withdrawal(consent, lives_in=lives_in)
        self.ledger.append([_withdrawn(consent, duty, when)])
        return consent, duty

    def withdraw_title(self, consent_id: str, title: str, at: datetime | None = None) -> Consent:
        """Withdraw a consent for one title only: the case-by-case withdrawal the VPPA requires
        be offered (18 U.S.C. 2710(b)(2)(B)(iii)); the consent carries on for every other title.

        The record is withdrawn at ``at`` (default now) and a new one takes its place, the same
        in every field but leaving the title out: given when the first was, so it ends when the
        first would have, the VPPA's two years included, while earlier releases stay judged by
        the first, in force when they were made. Returns the new record. Its ledger entry does
        not name the title: what a person stopped sharing tells what they watched.
        """
        when = utc(at) if at else datetime.now(UTC)
        where = f"consent {consent_id}"
        title = title.strip()
        if not title:
            raise ConsentError("name the title to stop sharing", where=where)
        with self.session() as s:
            repo = ConsentRepository(s)
            old = repo.get(consent_id)
            if not old.in_force_at(when):
                raise ConsentError("is not in force: there is nothing to withdraw", where=where)
            if not vppa.covers_viewing(old):
                raise ConsentError(
                    "does not cover what the person watched: it has no titles to withdraw",
                    where=where,
                )
            if old.scope is ConsentScope.ONE_DISCLOSURE:
                raise ConsentError(
                    "is for one disclosure only: withdraw it as a whole", where=where
                )
            if title in old.excluded_titles:
                raise ConsentError(f"already leaves out title {title!r}", where=where)
            narrowed = replace(
                old,
                id=f"{old.id.split('~')[0]}~{secrets.token_hex(4)}",
                excluded_titles=old.excluded_titles | {title},
                withdrawn_at=None,
            )
            with self.allowed.changing(s, old.controller, [old.person]):
                repo.withdraw(consent_id, when)
                repo.add(narrowed)
        self.ledger.append(
            [
                ConsentChangeEntry(
                    agreement=None,
                    reason=f"consent to {old.recipient} withdrawn for one title, case by case "
                    f"({vppa.CITATION}(iii)); in force for every other title",
                    purpose=sorted(old.purposes)[0],
                    categories=tuple(sorted(old.categories)),
                    about=(person_ref(old.controller, old.person),),
                    change="withdrawn",
                    recipient=old.recipient,
                    at=when,
                )
            ]
        )
        return narrowed

    def import_records(
        self,
        people: Sequence[Person],
        consents: Sequence[Consent],
        opt_outs: Sequence[OptOut] = (),
        *,
        progress: Callable[[int], None] | None = None,
        batch: int = 5_000,
    ) -> None:
        """Load existing records in bulk (a migration from a party's own consent store).

        Records are stored as they are; ones that fall short of the GDPR's Art. 7 are kept but
        never satisfy the GDPR's rule. Each consent is written to the ledger as given, at the
        time it was given, and one already withdrawn also as withdrawn, at the time it was, so
        the person's proof bundle shows both.
        """
        with self.session() as s:
            PeopleRepository(s).upsert_many(people)
            # People their party erased stay out, consents and opt-outs included.
            erased = suppressed_of(
                s, {c.controller for c in consents} | {o.controller for o in opt_outs}
            )
        if erased:
            consents = [c for c in consents if (c.controller, c.person) not in erased]
            opt_outs = [o for o in opt_outs if (o.controller, o.person) not in erased]
        # Where each person lives, for what a withdrawal then requires (records already withdrawn).
        withdrawn = any(c.withdrawn_at is not None for c in consents)
        homes = {(p.party, p.id): p.jurisdiction for p in people} if withdrawn else {}
        for start in range(0, len(consents), batch):
            chunk = consents[start : start + batch]
            with self.session() as s:
                ConsentRepository(s).bulk_add(chunk)
            self.ledger.append(
                entry for c in chunk for entry in _history(c, homes.get((c.controller, c.person)))
            )
            if progress:
                progress(len(chunk))
        with self.session() as s:
            repo = OptOutRepository(s)
            for signal in opt_outs:
                repo.add(signal)
        # Too many people to re-judge one by one: the kept sets are judged anew.
        self.allowed.changed_everyone()

    def person(self, party: str, person_id: str) -> Person:
        """A person ``party`` holds, with where they live, or :class:`NotFound`."""
        with self.session() as s:
            return PeopleRepository(s).get(party, person_id)

    @staticmethod
    def _holder_of(s: Session, consent: Consent) -> Person:
        try:
            return PeopleRepository(s).get(consent.controller, consent.person)
        except NotFound:
            if (consent.controller, consent.person) in suppressed_of(s, {consent.controller}):
                raise ConsentError(
                    f"{consent.controller} erased person {consent.person!r}: no record about "
                    "them is taken again",
                    where=f"consent {consent.id}",
                ) from None
            raise ConsentError(
                f"{consent.controller} holds no person {consent.person!r}: a consent is recorded "
                "only for a person the party has recorded, with where they live (from the "
                "party's own records: `accord person load`), never placed by the consent",
                where=f"consent {consent.id}",
            ) from None

    def consents(self, party: str, person: str) -> list[Consent]:
        """A person's consents at a party."""
        with self.session() as s:
            return ConsentRepository(s).for_person(party, person)

    def opt_out(self, signal: OptOut) -> None:
        """Record a sale/sharing opt-out (a form, or a Global Privacy Control signal), and write
        it to the ledger."""
        with self.session() as s, self.allowed.changing(s, signal.controller, [signal.person]):
            OptOutRepository(s).add(signal)
        self.ledger.append([_opted_out(signal)])

    def opt_in(
        self,
        controller: str,
        person: str,
        at: datetime | None = None,
        kind: OptOutKind = OptOutKind.SALE_SHARING,
    ) -> list[OptOut]:
        """Withdraw a person's opt-out of ``kind`` at ``at`` (default now), and write that to the
        ledger; the opt-outs it ended, as they now stand.

        The record of the opt-out stays, ended (``revoked_at``): the filter and the auditor judge
        each release by the opt-outs in force at its instant, so a release made while the person
        was opted out stays judged by it. Refused (:class:`ConsentError`) when no opt-out of
        theirs is in force then: there is nothing to withdraw.
        """
        when = utc(at) if at else datetime.now(UTC)
        with self.session() as s:
            repo = OptOutRepository(s)
            live = [
                o
                for o in repo.for_person(controller, person)
                if o.kind is kind and o.in_force_at(when)
            ]
            if not live:
                raise ConsentError(
                    f"person {person!r} has no opt-out of {kind.value.replace('_', '/')} in force "
                    f"at {controller} on {when.isoformat(timespec='seconds')}: nothing to withdraw",
                    where="--person",
                )
            with self.allowed.changing(s, controller, [person]):
                repo.revoke(controller, person, kind, when)
        self.ledger.append([_opted_in(controller, person, kind, when)])
        return [replace(o, revoked_at=when) for o in live]

    def standing(self, party: str, person: str, at: datetime | None = None) -> PersonStanding:
        """A person's consents and opt-outs at ``party``, and where each stands at ``at``
        (default now); ``lives_in`` is ``None`` for a person the party does not hold."""
        with self.session() as s:
            home = PeopleRepository(s).get_many(party, [person]).get(person)
            consents = ConsentRepository(s).for_person(party, person)
            single = [c.id for c in consents if c.scope is ConsentScope.ONE_DISCLOSURE]
            spent = ConsentRepository(s).spent(single)
            opt_outs = OptOutRepository(s).for_person(party, person)
        return person_standing(
            party,
            person,
            at or datetime.now(UTC),
            lives_in=home.jurisdiction if home else None,
            consents=consents,
            opt_outs=opt_outs,
            spent=spent,
        )

    def opt_outs(self, party: str, person: str) -> list[OptOut]:
        """Every opt-out a person sent a party, in force or ended, oldest first."""
        with self.session() as s:
            return OptOutRepository(s).for_person(party, person)

    # -- decisions -----------------------------------------------------------------------------

    def policy(self) -> Policy:
        """The compiled policy of the registry as it stands now.

        Compiled once per revision of the registry: every call reads the revision (one indexed
        row), so an agreement suspended or ended by another process sharing the store (the
        command line, another API worker) is refused from the next decision on. A partner
        API request reads it once, with its token (:func:`accord.store.registry.
        remember_revision`): it is decided against the registry as it stood then.
        """
        current = revision_seen(self.engine)  # read by the request's token check, if it ran
        if current is None:
            with translate(StoreError, "reading the agreement registry"):
                row = pooled_one(self.engine, REVISION_SQL)
            current = int(row[0]) if row is not None else 0
        cached = self._policy
        if cached is not None and cached[0] == current:
            return cached[1]
        # Read after the revision: if the registry moves on meanwhile, this policy is at least
        # as new as ``current`` and the next call compiles again.
        policy = Policy(self.agreements())
        self._policy = (current, policy)
        return policy

    def decide(self, request: Request, *, count_people: bool = True) -> Outcome:
        """Decide ``request``, count whom it lets through, and log the decision durably."""
        decision = self.policy().decide(request)
        allowed = considered = 0
        withheld: dict[str, int] = {}
        if decision.allowed and decision.filter is not None and count_people:
            with self.session() as s:
                allowed = len(filter_sql.allowed_people(s, decision.filter))
                withheld = filter_sql.refusals(s, decision.filter)
                considered = PeopleRepository(s).count(decision.filter.controller)
        receipt = self.ledger.append([decision_entry(decision, allowed)])[0]
        return Outcome(decision, allowed, considered, withheld, receipt)


def decision_entry(decision: Decision, people: int, client: str | None = None) -> DecisionEntry:
    """The ledger entry for a decision (``client``: the partner app that asked, if one did)."""
    r = decision.request
    return DecisionEntry(
        agreement=r.agreement,
        clause=r.clause,
        purpose=r.purpose,
        categories=tuple(sorted(r.categories)),
        reason=without_people(decision.reason, r),
        people=people,
        allowed=decision.allowed,
        rules=decision.rules,
        recipient=r.requester,
        action=r.operation.value,
        at=r.at,
        client=client,
    )


def refusal_entry(
    request: Request,
    rule: str,
    reason: str,
    at: datetime,
    client: str | None = None,
    *,
    about: tuple[str, ...] = (),
) -> DecisionEntry:
    """The ledger entry for a request refused by ``rule`` outside the policy (a failure on the
    way, a credential, an app review), with ``reason`` as a person reads it; ``about`` (ledger
    ids) where it concerns the people of a release logged before it (one never received)."""
    return DecisionEntry(
        agreement=request.agreement,
        clause=request.clause,
        purpose=request.purpose,
        categories=tuple(sorted(request.categories)),
        reason=without_people(reason, request),
        people=-1 if about else 0,
        about=about,
        allowed=False,
        rules=(rule,),
        recipient=request.requester,
        action=request.operation.value,
        at=at,
        client=client,
    )


ACTING = "the person acting"
ANCHOR = "the person whose relations were asked for"
NAMED = "a person the request named"
A_VALUE = "(a value)"


def without_people(text: str, request: Request) -> str:
    """``text`` as the ledger may hold it: every person the request names replaced by their part
    in it (:data:`ACTING`, :data:`ANCHOR`, :data:`NAMED`).

    The ledger is public and forever; crypto-shredding can forget a person only where the log
    names them by a keyed pseudonym, never in a sentence. Requests (and errors about them) name
    people by their ids, so every text that goes into an entry built from a request passes here.
    """
    roles = [(request.on_behalf_of, ACTING), (request.subjects.anchor, ANCHOR)]
    people = request.subjects.people
    if len(people) <= _FEW:
        roles += [(person, NAMED) for person in people]
    else:
        # A request may name a hundred thousand people (a private match): the text's words are
        # looked up among them, rather than each of them searched for in the text.
        words = {w for word in _WORD.findall(text) for w in (word, word.rstrip("."))}
        roles += [(person, NAMED) for person in words & people]
    return _replaced(text, [(person, role) for person, role in roles if person])


_FEW = 64
_WORD = re.compile(r"[^\s'\"(),;:\[\]]+")


def without_values(text: str, values: Iterable[object]) -> str:
    """``text`` (an error's) with every one of ``values`` (what a partner sent: conditions, rows,
    any of which may be someone's id, e-mail address or phone number) replaced by
    :data:`A_VALUE`, quoted or not."""
    found = {str(v) for v in values if v is not None and not isinstance(v, bool)}
    # Quoted forms first, as repr and JSON write them; then the bare value as a whole token.
    pairs = [(f"{quote}{v}{quote}", A_VALUE) for v in found for quote in ("'", '"')]
    pairs += [(v, A_VALUE) for v in found]
    return _replaced(text, pairs)


def _replaced(text: str, pairs: Sequence[tuple[str, str]]) -> str:
    """``text`` with each whole-token ``value`` of ``pairs`` replaced by its ``by``, in one pass
    (what was put in is not searched again), the longest value first where two overlap."""
    present = {value: by for value, by in pairs if value and value in text}
    if not present:
        return text
    alternatives = "|".join(map(re.escape, sorted(present, key=len, reverse=True)))
    pattern = re.compile(rf"(?<![\w@.-])(?:{alternatives})(?![\w@-])")
    return pattern.sub(lambda match: present[match.group(0)], text)


def _given(consent: Consent) -> ConsentChangeEntry:
    return ConsentChangeEntry(
        agreement=None,
        reason=f"consent given to {consent.recipient} for {', '.join(sorted(consent.purposes))}",
        purpose=sorted(consent.purposes)[0],
        categories=tuple(sorted(consent.categories)),
        about=(person_ref(consent.controller, consent.person),),
        change="given",
        recipient=consent.recipient,
        at=consent.given_at,
    )


def _withdrawn(consent: Consent, duty: gdpr.Obligations, at: datetime) -> ConsentChangeEntry:
    return ConsentChangeEntry(
        agreement=None,
        reason=f"consent to {consent.recipient} withdrawn; {duty.reason}",
        purpose=sorted(consent.purposes)[0],
        categories=tuple(sorted(consent.categories)),
        about=(person_ref(consent.controller, consent.person),),
        change="withdrawn",
        recipient=consent.recipient,
        at=at,
    )


OPT_OUT_PURPOSE = "marketing"
"""What a sale/sharing opt-out bars, in every place (:mod:`accord.law.optout`): its ledger
entries name it as their purpose."""


def _opted_out(signal: OptOut) -> ConsentChangeEntry:
    return ConsentChangeEntry(
        agreement=None,
        reason=f"opted out of the sale and sharing of their data ({signal.source.value}): "
        "left out of every marketing flow from now on",
        purpose=OPT_OUT_PURPOSE,
        about=(person_ref(signal.controller, signal.person),),
        change="opted_out",
        at=signal.at,
    )


def _opted_in(controller: str, person: str, kind: OptOutKind, at: datetime) -> ConsentChangeEntry:
    return ConsentChangeEntry(
        agreement=None,
        reason=f"withdrew their opt-out of {kind.value.replace('_', ' and ')}: marketing flows "
        "may include them again where their consent allows",
        purpose=OPT_OUT_PURPOSE,
        about=(person_ref(controller, person),),
        change="opted_in",
        at=at,
    )


def _history(consent: Consent, lives_in: str | None) -> Iterator[ConsentChangeEntry]:
    """The ledger entries of an imported record: given, and withdrawn if it already was."""
    yield _given(consent)
    if consent.withdrawn_at is not None:
        duty = gdpr.on_withdrawal(consent, lives_in=lives_in)
        yield _withdrawn(consent, duty, consent.withdrawn_at)


def _status_or_none(repo: AgreementRepository, agreement_id: str) -> ag.Status | None:
    try:
        return repo.get(agreement_id).status
    except NotFound:
        return None
