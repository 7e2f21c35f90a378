"""Erasure as one flow: a party erases a person it holds, and the person stops flowing and is
forgotten (GDPR Art. 17), their recipients told (Art. 19).

:func:`erase` does, in this order:

1. withdraws every consent of the person still in force, each withdrawal logged as any other;
2. finds whom their data went to: the recipients of their consents and of every release entry
   the ledger holds about them (found through their ledger key, before it goes);
3. seals their consent records (with the withdrawals) under a key derived from their ledger key,
   with AES-GCM: the proof of past consent the law lets the controller keep (Art. 7(1),
   17(3)(e)), which shredding the ledger key then puts beyond anyone but a holder of that key
   (the person, from their proof bundle: ``accord ledger prove``);
4. in one transaction: puts the person on the party's suppression list (``erased_people``,
   which every read joins against and no load passes), deletes every row of the store about them
   (their person row, consents with their purposes, categories and excluded titles, opt-outs,
   grants, authorization codes and tokens of partner apps, test-person entries, privacy budget),
   keeps the sealed proof, and leaves each recipient a notice naming them by the id that
   recipient knows them by, with a deadline to acknowledge it (:data:`DEADLINE`, one month as
   GDPR Art. 12(3) gives the controller), all under one erasure request whose unguessable id
   the person keeps;
5. last, shreds their ledger key and logs an erasure entry that names nobody, and an erasure
   notice entry for each recipient told.

A recipient reads its notices through the API and acknowledges each (:func:`acknowledge`): the
person's id is then cleared from the notice, which stays to show the request's state. A notice
past its deadline is *overdue*; :func:`retry_overdue` tells the recipient again, with a new
deadline (:data:`RETRY_DEADLINE`) and the reason in a sentence, so no request stays stuck
silently; every notice, retry and acknowledgement is in the ledger, naming nobody.

Run again after a failure, it finishes what is left; on a person already erased, it does
nothing. No entry after it can give the person a new key: the ledger refuses one for anyone on
the suppression list.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from accord.ads import tables as ads_t
from accord.api import tables as api_t
from accord.consent import Consent, OptOut
from accord.errors import InvalidInput, NotFound, StoreError, translate
from accord.ledger.entries import ErasureNoticeEntry, NoticeEvent
from accord.ledger.notes import notes_on
from accord.ledger.shred import lookup_pseudonym
from accord.pets import tables as pets_t
from accord.service import Accord, person_ref
from accord.store import tables as t
from accord.store.erased import is_erased
from accord.store.repositories import ConsentRepository, OptOutRepository, PartyRepository

DEADLINE = timedelta(days=30)
"""How long a recipient has to acknowledge a notice: one month, the time GDPR Art. 12(3) gives
the controller to act on the request."""
RETRY_DEADLINE = timedelta(days=7)
"""How long a recipient told again has to acknowledge."""

PROOF_CONTEXT = b"accord/erasure/consent-proof/v1"
"""HKDF info and AES-GCM associated data of a sealed proof: the key is for this use only."""


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure did."""

    party: str
    person: str
    withdrawn: int = 0
    """Consents withdrawn by the erasure (those already withdrawn or expired are not counted)."""
    recipients: tuple[str, ...] = ()
    """The parties told (each has a notice waiting)."""
    deleted: dict[str, int] = field(default_factory=dict)
    """Rows deleted from the store, by table."""
    sealed: bool = False
    """Whether a proof of past consent was kept, sealed under the person's key."""
    entries_forgotten: int = 0
    """Ledger entries no longer tied to the person."""
    receipt: int | None = None
    """The ledger index of the erasure entry; ``None`` if the person was already erased."""
    already: bool = False
    """The person was erased before: nothing was left to do."""
    request: str | None = None
    """The erasure request's id: the person keeps it to follow each recipient's notice."""


@dataclass(frozen=True, slots=True)
class Notice:
    """A recipient is told that a person whose data it received was erased (GDPR Art. 19)."""

    id: str
    recipient: str
    provider: str
    person: str
    """The person's id as the recipient knows them."""
    erased_at: datetime
    due_at: datetime | None = None
    """By when the recipient must acknowledge it."""
    attempts: int = 1
    """How many times the recipient was told."""
    problem: str | None = None
    """Why it was told again, if it was."""


NoticeState = Literal["notified", "acknowledged", "overdue"]


@dataclass(frozen=True, slots=True)
class RecipientState:
    """Where one recipient's notice of an erasure request stands; names no person."""

    recipient: str
    state: NoticeState
    told_at: datetime
    due_at: datetime | None
    attempts: int
    acknowledged_at: datetime | None
    problem: str | None


@dataclass(frozen=True, slots=True)
class RequestState:
    """An erasure request and each recipient's notice."""

    id: str
    provider: str
    requested_at: datetime
    recipients: tuple[RecipientState, ...]

    @property
    def done(self) -> bool:
        """Every recipient has acknowledged."""
        return all(r.state == "acknowledged" for r in self.recipients)


def request_tag(request: str) -> str:
    """How the ledger names an erasure request: SHA-256 of its id, so only who holds the id can
    find its entries."""
    return hashlib.sha256(request.encode("ascii")).hexdigest()


def erase(
    accord: Accord,
    party: str,
    person: str,
    *,
    known_as: Mapping[str, str] | None = None,
    at: datetime | None = None,
    deadline: timedelta = DEADLINE,
) -> Erasure:
    """Erase ``person``, whom ``party`` holds; see the module's docstring for the steps.

    ``known_as`` gives, for a recipient that knows the person by another id (an account the
    person linked), that id; every other recipient is told ``party``'s own id for them, the id
    the data it received carried. Raises :class:`~accord.errors.InvalidInput` for a party or
    person Accord does not know.
    """
    when = at or datetime.now(UTC)
    ref = person_ref(party, person)
    with accord.session() as s:
        try:
            PartyRepository(s).get(party)
        except NotFound:
            raise InvalidInput(f"no party {party!r} is registered", where="erasure") from None
        consents = ConsentRepository(s).for_person(party, person)
        opt_outs = OptOutRepository(s).for_person(party, person)
        held = s.execute(
            select(t.people.c.person_id).where(
                t.people.c.party == party, t.people.c.person_id == person
            )
        ).first()
        erased_before = is_erased(s, party, person)
    key = accord.ledger.key_of(ref)
    if erased_before and key is None:
        return Erasure(party, person, already=True)
    if held is None and not consents and not opt_outs and key is None and not erased_before:
        raise InvalidInput(
            f"party {party} holds no person {person!r}: Accord has no record of them and no "
            "ledger entry about them, so there is nothing to erase",
            where="erasure",
        )
    withdrawn = 0
    for consent in consents:
        if consent.withdrawn_at is None and (
            consent.expires_at is None or consent.expires_at > when
        ):
            accord.withdraw(consent.id, max(when, consent.given_at))
            withdrawn += 1
    recipients = {c.recipient for c in consents} | _received(accord, ref)
    recipients.discard(party)
    with accord.session() as s, accord.allowed.changing(s, party, [person]):
        # The records as they stand now, the withdrawals included, are what the proof keeps.
        consents = ConsentRepository(s).for_person(party, person)
        sealed = False
        if key is not None and not erased_before and (consents or opt_outs):
            seal_proof(s, key[0], consents, opt_outs, when)
            sealed = True
        request: str | None = None
        notices_rows: list[dict[str, Any]] = []
        if not erased_before:
            s.execute(insert(t.erased_people).values(party=party, person_id=person))
            request = secrets.token_hex(16)
            s.execute(
                insert(t.erasure_requests).values(id=request, provider=party, requested_at=when)
            )
            names = dict(known_as or {})
            notices_rows = [
                {
                    "id": uuid.uuid4().hex,
                    "recipient": r,
                    "provider": party,
                    "person": names.get(r, person),
                    "erased_at": when,
                    "request": request,
                    "told_at": when,
                    "due_at": when + deadline,
                    "attempts": 1,
                }
                for r in sorted(_known_parties(s, recipients))
            ]
            if notices_rows:
                s.execute(insert(t.erasure_notices), notices_rows)
        deleted = _delete_rows(s, party, person)
    forgotten = 0
    receipt = None
    told = tuple(sorted(recipients))
    if key is not None or not erased_before:
        done = accord.ledger.erase(
            ref,
            f"a person was erased at {party}'s request: {withdrawn} consents withdrawn, "
            f"{len(told)} recipients told, their records deleted"
            + (", the proof of their consent sealed under their key" if sealed else "")
            + "; their key is destroyed",
        )
        receipt = done.index
        forgotten = accord.ledger.leaf(done.index).entry().get("entries_forgotten", 0)
    if request is not None and notices_rows:
        accord.ledger.append(
            _notice_entry(
                "notified", request, row["provider"], row["recipient"], attempt=1, due=row["due_at"]
            )
            for row in notices_rows
        )
    return Erasure(
        party,
        person,
        withdrawn=withdrawn,
        recipients=told,
        deleted=deleted,
        sealed=sealed,
        entries_forgotten=int(forgotten),
        receipt=receipt,
        request=request,
    )


_NOTICE_REASONS: dict[str, str] = {
    "notified": "{recipient} was told that a person whose data it received from {provider} was "
    "erased (GDPR Art. 19), and asked to acknowledge by {due}",
    "told_again": "{recipient} had not acknowledged an erasure notice by its deadline: told "
    "again (attempt {attempt}), to acknowledge by {due}",
    "acknowledged": "{recipient} acknowledged an erasure notice from {provider}: it has erased "
    "the person on its side",
}


def _notice_entry(
    event: NoticeEvent,
    request: str,
    provider: str,
    recipient: str,
    *,
    attempt: int,
    due: datetime | None,
) -> ErasureNoticeEntry:
    due_text = _utc(due).isoformat().replace("+00:00", "Z") if due is not None else ""
    reason = _NOTICE_REASONS[event].format(
        recipient=recipient, provider=provider, attempt=attempt, due=due_text[:10]
    )
    return ErasureNoticeEntry(
        agreement=None,
        reason=reason,
        people=1,
        event=event,
        request=request_tag(request),
        provider=provider,
        recipient=recipient,
        attempt=attempt,
        due=due_text,
    )


def _utc(moment: datetime) -> datetime:
    """A stored time as UTC (SQLite hands it back without its zone)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _known_parties(s: Session, parties: set[str]) -> set[str]:
    if not parties:
        return set()
    return set(
        s.execute(select(t.parties.c.id).where(t.parties.c.id.in_(sorted(parties)))).scalars()
    )


def _delete_rows(s: Session, party: str, person: str) -> dict[str, int]:
    """Delete every row of the store about ``person`` of ``party``: how many, by table."""
    counts: dict[str, int] = {}

    def gone(table_name: str, statement: Any) -> None:
        with translate(StoreError, f"deleting the erased person's rows from {table_name}"):
            counts[table_name] = int(s.execute(statement).rowcount)  # type: ignore[attr-defined]

    theirs = select(t.consents.c.id).where(
        t.consents.c.controller == party, t.consents.c.person == person
    )
    children = (t.consent_purposes, t.consent_categories, t.consent_excluded_titles, t.consent_uses)
    for child in children:
        gone(child.name, delete(child).where(child.c.consent_id.in_(theirs)))
    gone(
        "consents",
        delete(t.consents).where(t.consents.c.controller == party, t.consents.c.person == person),
    )
    gone(
        "opt_outs",
        delete(t.opt_outs).where(t.opt_outs.c.controller == party, t.opt_outs.c.person == person),
    )
    gone(
        "people",
        delete(t.people).where(t.people.c.party == party, t.people.c.person_id == person),
    )
    # Partner apps under an agreement the party is in: a person token, code or test-person
    # entry there names the person by the party's id for them.
    agreements = select(t.agreements.c.id).where(
        or_(t.agreements.c.provider == party, t.agreements.c.recipient == party)
    )
    apps = select(api_t.apps_table.c.client_id).where(api_t.apps_table.c.agreement.in_(agreements))
    grants = api_t.grants_table
    gone(
        grants.name,
        delete(grants).where(grants.c.controller == party, grants.c.person == person),
    )
    for table in (api_t.tokens_table, api_t.codes_table, api_t.test_people_table):
        gone(
            table.name,
            delete(table).where(table.c.person == person, table.c.client_id.in_(apps)),
        )
    budgets = pets_t.privacy_budgets
    gone(
        budgets.name,
        delete(budgets).where(budgets.c.party == party, budgets.c.person_id == person),
    )
    # The ad platform's rows: the party's own signals and ad log about the person, and their
    # place in any audience, whether the party runs the platform or provided the audience.
    gone(
        ads_t.profiles.name,
        delete(ads_t.profiles).where(
            ads_t.profiles.c.platform == party, ads_t.profiles.c.person == person
        ),
    )
    gone(
        ads_t.impressions.name,
        delete(ads_t.impressions).where(
            ads_t.impressions.c.platform == party, ads_t.impressions.c.person == person
        ),
    )
    members, audiences, advertisers = ads_t.audience_members, ads_t.audiences, ads_t.advertisers
    on_platform = (
        select(audiences.c.id)
        .join(advertisers, advertisers.c.id == audiences.c.advertiser)
        .where(advertisers.c.platform == party)
    )
    provided = select(audiences.c.id).where(audiences.c.provider == party)
    gone(
        members.name,
        delete(members).where(
            or_(
                (members.c.person == person) & members.c.audience_id.in_(on_platform),
                (members.c.source_person == person) & members.c.audience_id.in_(provided),
            )
        ),
    )
    return {name: n for name, n in counts.items() if n}


# -- the sealed proof of past consent ------------------------------------------------------------


def _proof_key(ledger_key: bytes) -> bytes:
    """The AES-256 key of a sealed proof, derived from the person's ledger key (RFC 5869)."""
    return HKDF(hashes.SHA256(), 32, salt=None, info=PROOF_CONTEXT).derive(ledger_key)


def _records(consents: list[Consent], opt_outs: list[OptOut]) -> dict[str, Any]:
    def instant(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "consents": [
            {
                "id": c.id,
                "controller": c.controller,
                "recipient": c.recipient,
                "purposes": sorted(c.purposes),
                "categories": sorted(c.categories),
                "operations": sorted(o.value for o in c.operations),
                "given_at": instant(c.given_at),
                "expires_at": instant(c.expires_at),
                "withdrawn_at": instant(c.withdrawn_at),
                "method": c.method.value,
                "notice": c.notice,
                "distinct_and_separate": c.distinct_and_separate,
                "scope": c.scope.value,
                "disclosure": c.disclosure,
                "excluded_titles": sorted(c.excluded_titles),
            }
            for c in consents
        ],
        "opt_outs": [
            {
                "kind": o.kind.value,
                "source": o.source.value,
                "at": instant(o.at),
                "revoked_at": instant(o.revoked_at),
            }
            for o in opt_outs
        ],
    }


def seal_proof(
    s: Session, ledger_key: bytes, consents: list[Consent], opt_outs: list[OptOut], at: datetime
) -> None:
    """Keep the person's consent records sealed under their ledger key, found by their lookup
    pseudonym (which only a holder of the key can recompute)."""
    lookup = lookup_pseudonym(ledger_key)
    nonce = secrets.token_bytes(12)
    plain = json.dumps(_records(consents, opt_outs), sort_keys=True).encode("utf-8")
    sealed = AESGCM(_proof_key(ledger_key)).encrypt(nonce, plain, PROOF_CONTEXT + lookup)
    with translate(StoreError, "sealing the proof of past consent"):
        s.execute(
            insert(t.sealed_consent_proofs).values(
                lookup=lookup, nonce=nonce, sealed=sealed, sealed_at=at
            )
        )


def open_proof(accord: Accord, ledger_key: bytes) -> dict[str, Any]:
    """The consent records sealed at a person's erasure, opened with their ledger key (from
    their proof bundle). Raises :class:`~accord.errors.NotFound` when no proof is sealed under
    that key, :class:`~accord.errors.InvalidInput` when it does not open."""
    lookup = lookup_pseudonym(ledger_key)
    with accord.session() as s:
        row = s.execute(
            select(t.sealed_consent_proofs.c.nonce, t.sealed_consent_proofs.c.sealed).where(
                t.sealed_consent_proofs.c.lookup == lookup
            )
        ).first()
    if row is None:
        raise NotFound("no proof of past consent is sealed under this key")
    try:
        plain = AESGCM(_proof_key(ledger_key)).decrypt(
            bytes(row.nonce), bytes(row.sealed), PROOF_CONTEXT + lookup
        )
    except InvalidTag:
        raise InvalidInput("the sealed proof does not open with this key") from None
    records: dict[str, Any] = json.loads(plain)
    return records


# -- recipients' notices ----------------------------------------------------------------------


def notices(accord: Accord, recipient: str) -> list[Notice]:
    """The erasure notices waiting for ``recipient`` (not yet acknowledged), oldest first."""
    n = t.erasure_notices.c
    with accord.session() as s:
        rows = s.execute(
            select(
                n.id,
                n.recipient,
                n.provider,
                n.person,
                n.erased_at,
                n.due_at,
                n.attempts,
                n.problem,
            )
            .where(n.recipient == recipient, n.acknowledged_at.is_(None))
            .order_by(n.erased_at, n.id)
        ).all()
    return [
        Notice(
            r.id,
            r.recipient,
            r.provider,
            r.person or "",
            _utc(r.erased_at),
            None if r.due_at is None else _utc(r.due_at),
            int(r.attempts),
            r.problem,
        )
        for r in rows
    ]


def acknowledge(
    accord: Accord, recipient: str, notice_id: str, *, at: datetime | None = None
) -> None:
    """``recipient`` has acted on a notice: the person's id is cleared from it, it is marked
    acknowledged, and the ledger records it. Acknowledging twice changes nothing.

    Raises :class:`~accord.errors.NotFound` for a notice that is not the recipient's."""
    when = at or datetime.now(UTC)
    n = t.erasure_notices
    with accord.session() as s:
        row = s.execute(
            select(n.c.request, n.c.provider, n.c.attempts, n.c.acknowledged_at).where(
                n.c.id == notice_id, n.c.recipient == recipient
            )
        ).first()
        if row is None:
            raise NotFound(f"{recipient} has no erasure notice {notice_id!r}")
        if row.acknowledged_at is not None:
            return
        if row.request is None:
            # A notice left before requests were followed: nothing shows its state, so it goes.
            s.execute(delete(n).where(n.c.id == notice_id))
            return
        s.execute(
            update(n)
            .where(n.c.id == notice_id, n.c.acknowledged_at.is_(None))
            .values(acknowledged_at=when, person=None)
        )
    accord.ledger.append(
        [
            _notice_entry(
                "acknowledged",
                row.request,
                row.provider,
                recipient,
                attempt=int(row.attempts),
                due=None,
            )
        ]
    )


def retry_overdue(
    accord: Accord,
    *,
    request: str | None = None,
    at: datetime | None = None,
    deadline: timedelta = RETRY_DEADLINE,
) -> int:
    """Tell again every recipient whose notice is past its deadline unacknowledged (of one
    ``request``, or of all), with a new deadline and the reason; returns how many were told.

    Run it from a schedule (``accord person retry-erasures``) or from the request's page; telling a
    recipient again is making its notice current in its list, with the attempt counted."""
    when = at or datetime.now(UTC)
    n = t.erasure_notices
    query = select(
        n.c.id, n.c.request, n.c.provider, n.c.recipient, n.c.attempts, n.c.due_at
    ).where(n.c.acknowledged_at.is_(None), n.c.request.is_not(None), n.c.due_at < when)
    if request is not None:
        query = query.where(n.c.request == request)
    entries = []
    with accord.session() as s:
        for row in s.execute(query).all():
            attempt = int(row.attempts) + 1
            due = when + deadline
            problem = (
                f"{row.recipient} had not acknowledged by {_utc(row.due_at):%d %b %Y}: "
                f"told again on {when:%d %b %Y} (attempt {attempt})"
            )
            s.execute(
                update(n)
                .where(n.c.id == row.id, n.c.acknowledged_at.is_(None))
                .values(attempts=attempt, told_at=when, due_at=due, problem=problem)
            )
            entries.append(
                _notice_entry(
                    "told_again", row.request, row.provider, row.recipient, attempt=attempt, due=due
                )
            )
    if entries:
        accord.ledger.append(entries)
    return len(entries)


def request_state(accord: Accord, request: str, *, at: datetime | None = None) -> RequestState:
    """Where an erasure request stands with each recipient.

    Raises :class:`~accord.errors.NotFound` for an id no request has."""
    when = at or datetime.now(UTC)
    r, n = t.erasure_requests.c, t.erasure_notices.c
    with accord.session() as s:
        found = s.execute(select(r.id, r.provider, r.requested_at).where(r.id == request)).first()
        if found is None:
            raise NotFound("no erasure request has this id")
        rows = s.execute(
            select(n.recipient, n.told_at, n.due_at, n.attempts, n.acknowledged_at, n.problem)
            .where(n.request == request)
            .order_by(n.recipient)
        ).all()
    recipients = []
    for row in rows:
        due = None if row.due_at is None else _utc(row.due_at)
        acked = None if row.acknowledged_at is None else _utc(row.acknowledged_at)
        state: NoticeState = (
            "acknowledged"
            if acked
            else ("overdue" if due is not None and due < when else "notified")
        )
        recipients.append(
            RecipientState(
                row.recipient,
                state,
                _utc(row.told_at),
                due,
                int(row.attempts),
                acked,
                row.problem,
            )
        )
    return RequestState(found.id, found.provider, _utc(found.requested_at), tuple(recipients))


def _received(accord: Accord, ref: str) -> set[str]:
    """The parties that received a release about the person ``ref``: those of every release
    about them but one a later entry says never reached its recipient (GDPR Art. 19 names the
    recipients to whom the data were disclosed; telling another would disclose the person)."""
    leaves = accord.ledger.indexed_leaves_about(ref)
    undone = notes_on(leaves)
    return {
        leaf["recipient"]
        for index, leaf in leaves
        if leaf.get("kind") == "release"
        and isinstance(leaf.get("recipient"), str)
        and index not in undone
    }
