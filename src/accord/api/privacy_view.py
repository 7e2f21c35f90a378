"""What the privacy centre's pages show, built from the records: pure functions, no I/O.

A person's consents become cards (what each covers in words, when it ends, where it stands, and
whether it can be withdrawn as a whole or for one title); their ledger entries become rows that
say where their data went (partner, agreement, clause, purpose, categories, legal basis, when,
the entry's index and leaf hash, for the page's own check of its proof).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from accord import agreements as ag
from accord import taxonomy
from accord.consent import Operation, Scope
from accord.consent_view import state as state_words
from accord.jurisdictions import validate_code
from accord.law import gdpr, optout, vppa
from accord.ledger.notes import RELEASE_UNDELIVERED_RULE, notes_on, undone_release
from accord.ledger.results import StoredLeaf
from accord.standing import PersonStanding, Standing, State


def day(moment: datetime | None) -> str:
    """``29 Nov 2026``."""
    return "—" if moment is None else f"{moment.day} {moment:%b %Y}"


def moment_text(moment: datetime | None) -> str:
    """``29 Nov 2026, 14:02 UTC``."""
    return "—" if moment is None else f"{day(moment)}, {moment:%H:%M} UTC"


def term(kind: taxonomy.Kind, key: str) -> str:
    """A taxonomy key's name, or the key itself where the taxonomy has none."""
    found = taxonomy.terms(kind).get(key)
    return found.name if found is not None else key


def purpose_name(key: str) -> str:
    """A purpose (fideslang data use) in words."""
    return term(taxonomy.Kind.PURPOSE, key)


def category_name(key: str) -> str:
    """A data category in words."""
    return term(taxonomy.Kind.CATEGORY, key)


@dataclass(frozen=True, slots=True)
class Home:
    """Where a person lives and the laws Accord applies to them there."""

    code: str
    laws: tuple[str, ...]
    opt_out_law: str
    vppa: bool
    """Whether the VPPA binds what they watched (they live in the US)."""


def home(code: str) -> Home:
    """``code`` (ISO 3166) with the laws that protect a person who lives there."""
    code = validate_code(code)
    laws = []
    if vppa.APPLIES_TO.contains(code):
        laws.append(f"Video Privacy Protection Act ({vppa.CITATION}) for what you watch")
    if gdpr.APPLIES_TO.contains(code):
        laws.append("GDPR: consent for each purpose, withdrawable at any time (Art. 6, 7)")
    law = next(x for x in optout.LAWS if x.places.contains(code))
    cited = law.name if law.citation == law.name else f"{law.name}, {law.citation}"
    return Home(code, tuple(laws), cited, vppa.APPLIES_TO.contains(code))


@dataclass(frozen=True, slots=True)
class ConsentCard:
    """One consent as the overview shows it."""

    id: str
    recipient: str
    purposes: tuple[str, ...]
    categories: tuple[str, ...]
    operations: str
    titles: str
    given: str
    ends: tuple[str, ...]
    state: str
    in_force: bool
    viewing: bool
    excluded: tuple[str, ...]
    per_title: bool
    """Whether it can be withdrawn for one title (an ongoing consent covering viewing)."""
    app: str | None
    """The partner app the person gave it to, where it backs a grant."""


def _titles(s: Standing) -> str:
    c = s.consent
    if c.scope is Scope.ONE_DISCLOSURE:
        return f"only {c.disclosure}, for one disclosure"
    if c.excluded_titles:
        return "every title but " + ", ".join(sorted(c.excluded_titles))
    return "every title"


def _ends(s: Standing) -> tuple[str, ...]:
    c = s.consent
    out = [f"{moment_text(c.expires_at)}" if c.expires_at else "no end date stated"]
    until = s.viewing_until
    if until is not None and (c.expires_at is None or until < c.expires_at):
        what = "" if vppa.only_viewing(c) else "for what you watched: "
        out.append(
            f"{what}{moment_text(until)}: the VPPA lets a consent given in advance count for "
            f"{vppa.MAX_ADVANCE_YEARS} years at most"
        )
    return tuple(out)


def consent_cards(standing: PersonStanding, apps: Mapping[str, str]) -> list[ConsentCard]:
    """Each of the person's consents, newest first; ``apps`` names the app each consent backs a
    grant of, by consent id."""
    cards = []
    for s in reversed(standing.consents):
        c = s.consent
        in_force = s.state is State.IN_FORCE
        viewing = vppa.covers_viewing(c)
        cards.append(
            ConsentCard(
                id=c.id,
                recipient=c.recipient,
                purposes=tuple(purpose_name(p) for p in sorted(c.purposes)),
                categories=tuple(category_name(k) for k in sorted(c.categories)),
                operations=" and ".join(
                    "send on your behalf" if o is Operation.WRITE else "read"
                    for o in sorted(c.operations)
                ),
                titles=_titles(s),
                given=moment_text(c.given_at),
                ends=_ends(s),
                state=state_words(s).replace("they watched", "you watched"),
                in_force=in_force,
                viewing=viewing,
                excluded=tuple(sorted(c.excluded_titles)),
                per_title=in_force and viewing and c.scope is Scope.ONGOING,
                app=apps.get(c.id),
            )
        )
    return cards


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One ledger entry about the person, as the releases page shows it."""

    index: int
    kind: str
    headline: str
    at: str
    at_iso: str
    partner: str | None
    agreement: str | None
    clause: str | None
    purpose: str | None
    purpose_key: str | None
    categories: tuple[str, ...]
    legal_basis: str | None
    people: int | None
    reason: str
    title: str | None
    leaf_hash: str
    proved: bool
    undone: str | None = None
    """For a release that never reached its recipient, what a later entry says became of it."""
    undone_by: int | None = None
    """That later entry's index."""


_CHANGES = {
    "given": "You gave consent to {recipient}",
    "renewed": "You renewed your consent to {recipient}",
    "withdrawn": "Your consent to {recipient} was withdrawn",
    "expired": "Your consent to {recipient} expired",
    "opted_out": "You opted out of the sale and sharing of your data",
    "opted_in": "You withdrew your opt-out of sale and sharing",
}


def _headline(entry: Mapping[str, Any], party: str, *, undone: bool = False) -> str:
    kind = entry.get("kind")
    provider, recipient = entry.get("provider"), entry.get("recipient") or "a partner"
    if kind == "release":
        if entry.get("operation") == "write":
            if undone:
                return f"{recipient} tried to write to your {provider} account on your behalf"
            return f"{recipient} wrote to your {provider} account on your behalf"
        names = [category_name(k).lower() for k in entry.get("categories") or ()]
        what = f"Your {', '.join(names)}" if names else "Your data"
        where = "" if provider == party else f" at {provider}"
        return (
            f"{what}{where} never reached {recipient}"
            if undone
            else f"{what}{where} went to {recipient}"
        )
    if kind == "consent":
        text = _CHANGES.get(str(entry.get("change")), "Your consent changed")
        return text.format(recipient=recipient)
    if kind == "decision":
        index = undone_release(entry)
        if index is not None:
            if entry.get("rules") == [RELEASE_UNDELIVERED_RULE]:
                return f"A note on entry #{index}: {recipient} never received it"
            return f"A note on entry #{index}: writing it failed"
        verdict = "allowed" if entry.get("allowed") else "refused"
        return f"A request by {recipient} was {verdict}"
    if kind == "budget":
        return f"A private count by {recipient} spent some of your privacy budget"
    return str(kind or "entry").capitalize()


def _partner(entry: Mapping[str, Any], party: str) -> str | None:
    provider, recipient = entry.get("provider"), entry.get("recipient")
    if provider and provider != party:
        return str(provider)
    return str(recipient) if recipient and recipient != party else None


def legal_bases(registered: Iterable[ag.Registered]) -> dict[tuple[str, str], str]:
    """Each clause's legal basis, by (agreement, clause)."""
    return {
        (r.agreement.id, c.id): c.legal_basis.value.replace("_", " ")
        for r in registered
        for c in r.agreement.clauses
    }


def entry_rows(
    leaves: Iterable[StoredLeaf],
    party: str,
    *,
    proved: set[int],
    bases: Mapping[tuple[str, str], str],
) -> list[EntryRow]:
    """Each leaf as a row, newest first; ``proved`` holds the indexes a signed checkpoint covers.

    The legal basis is the clause's, where the entry names an agreement and a clause (a leaf does
    not record one of its own). A release a later entry says never reached its recipient is
    marked so (:func:`accord.ledger.notes.notes_on`): it is not counted as a release."""
    entries = [(leaf, leaf.entry()) for leaf in leaves]
    by_index = {leaf.index: e for leaf, e in entries}
    undone = notes_on(by_index.items())
    rows = []
    for leaf, e in entries:
        note = undone.get(leaf.index) if e.get("kind") == "release" else None
        purpose = e.get("purpose")
        agreement, clause = e.get("agreement"), e.get("clause")
        people = e.get("people")
        rows.append(
            EntryRow(
                index=leaf.index,
                kind=str(e.get("kind", "")),
                headline=_headline(e, party, undone=note is not None),
                at=_leaf_time(e.get("at")),
                at_iso=str(e.get("at", "")),
                partner=_partner(e, party),
                agreement=agreement,
                clause=clause,
                purpose=purpose_name(purpose) if purpose else None,
                purpose_key=purpose,
                categories=tuple(category_name(k) for k in e.get("categories") or ()),
                legal_basis=bases.get((agreement, clause)) if agreement and clause else None,
                people=people if isinstance(people, int) else None,
                reason=str(e.get("reason", "")),
                title=e.get("title"),
                leaf_hash=leaf.leaf_hash.hex(),
                proved=leaf.index in proved,
                undone=None if note is None else _undone(by_index[note]),
                undone_by=note,
            )
        )
    rows.sort(key=lambda r: r.index, reverse=True)
    return rows


def _undone(note: Mapping[str, Any]) -> str:
    """What a note says became of the release it names, in words."""
    if note.get("rules") == [RELEASE_UNDELIVERED_RULE]:
        recipient = note.get("recipient") or "the partner"
        return f"Never received: {recipient} was answered that nothing was released."
    return "Not written: writing it into the receiving party's database failed."


def released(rows: Iterable[EntryRow]) -> list[EntryRow]:
    """The rows of releases that reached their recipient."""
    return [r for r in rows if r.kind == "release" and r.undone is None]


def _leaf_time(text: object) -> str:
    """A leaf's ``at`` (``2026-11-29T14:02:00.000000Z``) in words."""
    try:
        return moment_text(datetime.fromisoformat(str(text)))
    except ValueError:
        return str(text)
