"""Consent-aware private matching: each side feeds in only the people Accord lets through.

A match runs under a **match-only** clause (``granularity: match_only``) of an active agreement.
On each side, before anything leaves:

1. the side's request is decided by the compiled policy (:meth:`accord.policy.Policy.decide`):
   agreement, lifecycle, law; a refusal is logged to the ledger and releases nothing;
2. the per-person filter of the decision (consent, jurisdiction, opt-outs) is evaluated in one
   query (:func:`accord.store.filter_sql.allowed_people`); only those people's identifiers are
   kept, and people unknown to the store are not;
3. the decision and the release (the blinded identifiers of the people fed in, ``match-only``)
   are appended to the ledger, durably;

and only then does the protocol of :mod:`accord.pets.psi` run. A failure on the way is logged
as a refused decision with the rule ``psi:failed``.

The client's request names the clause under which its own people go out; the ``ask`` it sends
in HELLO names the clause under which the server's people do, and the server decides it for the
authenticated party that asked (:func:`admit_through_accord`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from accord.agreements import Granularity
from accord.consent import Operation
from accord.errors import AccordError, InvalidInput
from accord.gateway.errors import Refused
from accord.ledger.entries import ReleaseEntry
from accord.ledger.log import Receipt
from accord.pets.psi import curve
from accord.pets.psi.choices import Kind, Mode, Protocol, check
from accord.pets.psi.ecdh import Admit, Result, Transport, match
from accord.pets.psi.ids import encode, normalise
from accord.pets.psi.wire import MatchError, MatchRefused, ProtocolError
from accord.policy import Decision
from accord.requests import Request
from accord.service import Accord, decision_entry, person_refs, refusal_entry
from accord.store import filter_sql

FAILED_RULE = "psi:failed"
NOT_MATCH_ONLY_RULE = "psi:not-match-only"

Records = Iterable[tuple[str, str]]
"""(person id at this party, raw identifier) pairs; a person may have several."""


@dataclass(frozen=True, slots=True)
class Feed:
    """What one side feeds in: the decision, each encoded identifier's people, the receipts."""

    decision: Decision
    owners: Mapping[bytes, frozenset[str]]
    people: int
    receipts: tuple[Receipt, ...]

    @property
    def identifiers(self) -> list[bytes]:
        """The encoded identifiers fed in."""
        return list(self.owners)


@dataclass(frozen=True, slots=True)
class Matched:
    """A match made through Accord: the protocol's result and, by id, our people it matched."""

    result: Result
    people: frozenset[str]
    feed: Feed


def decide_match(accord: Accord, request: Request) -> Decision:
    """Decide ``request``; raise :class:`Refused` (logged) unless it is allowed and match-only."""
    decision = accord.policy().decide(request)
    if not decision.allowed:
        receipt = accord.ledger.append([decision_entry(decision, 0)])[0]
        raise Refused(decision, receipt)
    clause = decision.clause
    if clause is None or decision.filter is None:
        _log_failure(accord, request, FAILED_RULE, "the policy allowed it without a filter")
        raise MatchError("the policy allowed the match without a clause or a filter")
    if clause.granularity is not Granularity.MATCH_ONLY:
        what = (
            f"clause {clause.id} releases {clause.granularity.value}s; private matching runs "
            "only under a match-only clause"
        )
        _log_failure(accord, request, NOT_MATCH_ONLY_RULE, what)
        raise InvalidInput(what, where=f"request {request.id}")
    return decision


def feed(
    accord: Accord,
    request: Request,
    records: Records,
    *,
    kind: Kind,
    mode: Mode,
    region: str | None = None,
) -> Feed:
    """Decide, keep only the allowed people's identifiers, and log the release (durably).

    Raises :class:`Refused` when the policy refuses, or an :class:`AccordError` (logged) on any
    other failure; nothing leaves then.
    """
    decision = decide_match(accord, request)
    person_filter = decision.filter
    if person_filter is None:  # pragma: no cover - decide_match made sure
        raise MatchError("no filter")
    try:
        with accord.session() as session:
            allowed = filter_sql.allowed_people(session, person_filter)
        owners: dict[bytes, set[str]] = {}
        for number, (person, raw) in enumerate(records, 1):
            if person not in allowed:
                continue  # never normalised, never hashed, never sent
            try:
                value = encode(kind, normalise(kind, raw, region=region))
            except InvalidInput as exc:
                raise InvalidInput(exc.message, where=f"record {number} (person {person})") from exc
            owners.setdefault(value, set()).add(person)
        fed = frozenset().union(*owners.values()) if owners else frozenset()
        receipts = _log_release(accord, decision, fed, kind, mode)
    except AccordError as exc:
        _log_failure(accord, request, FAILED_RULE, f"preparing the match failed: {exc.message}")
        raise
    return Feed(decision, {k: frozenset(v) for k, v in owners.items()}, len(fed), receipts)


def match_through_accord(
    accord: Accord,
    request: Request,
    records: Records,
    transport: Transport,
    *,
    ask: Mapping[str, Any],
    kind: Kind,
    mode: Mode = Mode.INTERSECTION,
    engine: curve.Engine | None = None,
    region: str | None = None,
    protocol: Protocol | None = None,
) -> Matched:
    """Match our allowed people with the other side's, as the client.

    ``request`` is our side's (the clause under which our people's blinded identifiers go out);
    ``ask`` is what the other side decides for theirs (see :func:`ask_for`); ``protocol`` how
    the match is computed (by default, as :func:`~accord.pets.psi.choices.choose` says).
    """
    check(protocol, mode)
    fed = feed(accord, request, records, kind=kind, mode=mode, region=region)
    own = engine or curve.Engine()
    try:
        result = match(transport, fed.identifiers, own, mode=mode, request=ask, protocol=protocol)
    except MatchRefused as exc:
        _log_failure(accord, request, FAILED_RULE, f"the other side refused: {exc.message}")
        raise
    except AccordError as exc:
        _log_failure(accord, request, FAILED_RULE, f"the match failed: {exc.message}")
        raise
    finally:
        if engine is None:
            own.close()
    people = frozenset().union(*(fed.owners[i] for i in result.matched))
    return Matched(result, people, fed)


def ask_for(request: Request) -> dict[str, Any]:
    """What a client asks the server's Accord to decide: agreement, clause, purpose, categories."""
    return {
        "agreement": request.agreement,
        "clause": request.clause,
        "purpose": request.purpose,
        "categories": sorted(request.categories),
    }


def request_from(ask: Mapping[str, Any], requester: str) -> Request:
    """The match-only request an ``ask`` stands for, made by ``requester`` now."""
    categories = ask.get("categories")
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise ProtocolError("a match names its categories as a list of keys")
    try:
        return Request(
            requester=requester,
            agreement=str(ask["agreement"]),
            clause=str(ask["clause"]),
            operation=Operation.READ,
            purpose=str(ask["purpose"]),
            categories=frozenset(categories),
            at=datetime.now(UTC),
        )
    except (KeyError, TypeError) as exc:
        raise ProtocolError(
            f"a match names agreement, clause, purpose and categories: {exc}"
        ) from exc


def admit_through_accord(
    accord: Accord,
    records: Callable[[], Records],
    requester: str,
    *,
    kind: Kind,
    region: str | None = None,
) -> Admit:
    """The server's :data:`~accord.pets.psi.Admit`: Accord decides each HELLO for ``requester``.

    ``records`` reads this side's (person, identifier) pairs afresh for each match.
    """

    def admit(ask: Mapping[str, Any], mode: Mode) -> Sequence[bytes]:
        request = request_from(ask, requester)
        try:
            return feed(accord, request, records(), kind=kind, mode=mode, region=region).identifiers
        except Refused as exc:
            raise MatchRefused(exc.decision.reason, where=f"request {request.id}") from exc

    return admit


def _log_release(
    accord: Accord, decision: Decision, fed: frozenset[str], kind: Kind, mode: Mode
) -> tuple[Receipt, ...]:
    request = decision.request
    registered = accord.policy().registry[request.agreement].agreement
    clause = decision.clause
    if clause is None or decision.filter is None:  # pragma: no cover - decide_match made sure
        raise MatchError("no clause")
    sender, receiver = registered.sender_of(clause), registered.receiver_of(clause)
    learns = (
        "which of its own identifiers are among them"
        if mode is Mode.INTERSECTION
        else "how many of its own identifiers are among them"
    )
    release = ReleaseEntry(
        agreement=request.agreement,
        clause=request.clause,
        purpose=request.purpose,
        categories=tuple(sorted(request.categories)),
        reason=(
            f"{sender} → {receiver}: blinded {kind.value} identifiers of {len(fed)} people for "
            f"private matching; {receiver} can learn only {learns}"
        ),
        people=len(fed),
        about=person_refs(decision.filter.controller, sorted(fed)),
        provider=sender,
        recipient=receiver,
        fields=(f"identifiers.{kind.value}",),
        granularity="match-only",
        at=request.at,
    )
    return tuple(accord.ledger.append([decision_entry(decision, len(fed)), release]))


def _log_failure(accord: Accord, request: Request, rule: str, what: str) -> Receipt | None:
    entry = refusal_entry(request, rule, f"Refused: {what}.", request.at)
    try:
        return accord.ledger.append([entry])[0]
    except Exception:  # noqa: BLE001 - the ledger is unreachable; the caller raises anyway
        return None
