"""Everything Accord holds about one person, as one JSON document: their right of access (GDPR
Art. 15) and to data portability (Art. 20), in a structured, commonly used, machine-readable form.

:func:`export_person` gathers, for a person of a party: the party's record of them (where they
live), every consent with where it stands, every opt-out, every grant to a partner app and the
app's access tokens for them (never a token's hash), the apps that made them a test person, their
privacy budget, the erasure notices the party received about them, and every ledger entry about
them with its inclusion proof (the bundle ``accord ledger prove`` prints, which
``verify_proof.py`` checks alone). It reads the same rows :mod:`accord.erasure` deletes, so what
an erasure would remove is what an export shows.

The document's JSON Schema is ``accord/web/static/person-export-v1.schema.json``, served at
:data:`SCHEMA_URL`; ``docs/privacy-centre.md`` explains each part.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from accord.api import tables as api_t
from accord.api.scopes import Scope
from accord.consent_view import opt_out_json, standing_json
from accord.errors import NotFound
from accord.ledger.notes import notes_on
from accord.ledger.results import StoredLeaf
from accord.pets import tables as pets_t
from accord.pets.tables import DELTA_UNIT, EPSILON_UNIT
from accord.service import Accord, person_ref
from accord.standing import PersonStanding
from accord.store import tables as t

EXPORT_FORMAT = "accord-person-export/v1"
SCHEMA_FILE = "person-export-v1.schema.json"
SCHEMA_URL = f"/static/{SCHEMA_FILE}"
"""Where the server serves the export's JSON Schema."""


def schema() -> dict[str, Any]:
    """The export's JSON Schema (draft 2020-12)."""
    text = (resources.files("accord.web") / "static" / SCHEMA_FILE).read_text(encoding="utf-8")
    found: dict[str, Any] = json.loads(text)
    return found


def _instant(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def person_entries(
    accord: Accord, party: str, person: str
) -> tuple[dict[str, Any] | None, list[StoredLeaf]]:
    """A person's ledger proof bundle (``None`` where no signed checkpoint covers any of their
    entries yet) and every leaf about them, oldest first, the pending ones included."""
    ref = person_ref(party, person)
    ledger = accord.ledger
    try:
        bundle: dict[str, Any] | None = ledger.prove_person(ref)
    except NotFound:
        bundle = None
    if bundle is None:
        indexes = sorted(ledger.entries_about(ref))
        return None, [ledger.leaf(i) for i in indexes]
    proved = [
        StoredLeaf(e["index"], e["leaf"].encode("utf-8"), bytes.fromhex(e["leaf_hash"]))
        for e in bundle["entries"]
    ]
    return bundle, proved + [ledger.leaf(i) for i in bundle["pending"]]


def consent_json(standing: PersonStanding) -> list[dict[str, Any]]:
    """Each consent with where it stands and how it was collected (ISO/IEC TS 27560 fields)."""
    out = []
    for s in standing.consents:
        c = s.consent
        out.append(
            {
                **standing_json(s),
                "method": c.method.value,
                "notice": c.notice,
                "distinct_and_separate": c.distinct_and_separate,
                "withdrawal_method": c.withdrawal_method.value if c.withdrawal_method else None,
            }
        )
    return out


def export_person(
    accord: Accord, party: str, person: str, *, at: datetime | None = None
) -> dict[str, Any]:
    """Everything about ``person`` of ``party`` in the store, as of ``at`` (default now);
    :class:`NotFound` for a person the party does not hold."""
    when = at or datetime.now(UTC)
    held = accord.person(party, person)
    standing = accord.standing(party, person, when)
    with accord.session() as s:
        apps = _apps(s, party)
        grants, tokens, codes, testers = _partner_apps(s, apps, party, person, when)
        budget = _budget(s, party, person)
        notices = _notices(s, party, person)
    bundle, leaves = person_entries(accord, party, person)
    proved = {e["index"] for e in bundle["entries"]} if bundle else set()
    return {
        "format": EXPORT_FORMAT,
        "schema": SCHEMA_URL,
        "generated_at": when.isoformat(),
        "controller": party,
        "person": {
            "id": person,
            "lives_in": held.jurisdiction,
            "ledger_id": person_ref(party, person),
        },
        "consents": consent_json(standing),
        "opt_outs": [opt_out_json(o, when) for o in standing.opt_outs],
        "opted_out": standing.opted_out,
        "grants": grants,
        "tokens": tokens,
        "authorization_codes": codes,
        "test_person_of": testers,
        "privacy_budget": budget,
        "erasure_notices": notices,
        "ledger": {"entries": _entries(leaves, proved), "proof": bundle},
    }


def _entries(leaves: list[StoredLeaf], proved: set[int]) -> list[dict[str, Any]]:
    """Each entry as the export lists it; a release a later entry says never reached its
    recipient names that entry (:func:`accord.ledger.notes.notes_on`)."""
    decoded = [(leaf.index, leaf.entry()) for leaf in leaves]
    notes = notes_on(decoded)
    out: list[dict[str, Any]] = []
    for index, entry in decoded:
        item = {"index": index, "entry": entry, "proved": index in proved}
        if entry.get("kind") == "release" and index in notes:
            item["never_received"] = notes[index]
        out.append(item)
    return out


def _apps(s: Session, party: str) -> dict[str, Any]:
    """The apps that act for the party's people: those of the other party of an agreement the
    party is in, by client id."""
    agreements = select(t.agreements.c.id).where(
        or_(t.agreements.c.provider == party, t.agreements.c.recipient == party)
    )
    a = api_t.apps_table.c
    rows = s.execute(
        select(a.client_id, a.name, a.party, a.agreement).where(
            a.agreement.in_(agreements), a.party != party
        )
    ).all()
    return {r.client_id: r for r in rows}


def _app(apps: dict[str, Any], client_id: str) -> dict[str, Any]:
    row = apps.get(client_id)
    return {
        "client_id": client_id,
        "app": row.name if row else None,
        "app_party": row.party if row else None,
        "agreement": row.agreement if row else None,
    }


def _partner_apps(
    s: Session, apps: dict[str, Any], party: str, person: str, at: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    g = api_t.grants_table.c
    grants = [
        {
            **_app(apps, r.client_id),
            "scope": r.scope,
            "permission": Scope.parse(r.scope).describe(),
            "consent_id": r.consent_id,
            "granted_at": _instant(r.granted_at),
            "expires_at": _instant(r.expires_at),
            "revoked_at": _instant(r.revoked_at),
            "in_force": r.revoked_at is None and r.granted_at <= at < r.expires_at,
        }
        for r in s.execute(
            select(api_t.grants_table)
            .where(g.controller == party, g.person == person)
            .order_by(g.granted_at, g.id)
        )
    ]
    ids = sorted(apps)
    k = api_t.tokens_table.c
    tokens = [
        {
            **_app(apps, r.client_id),
            "scope": r.scope.split(),
            "issued_at": _instant(r.issued_at),
            "expires_at": _instant(r.expires_at),
            "revoked_at": _instant(r.revoked_at),
        }
        for r in s.execute(
            select(api_t.tokens_table)
            .where(k.person == person, k.client_id.in_(ids))
            .order_by(k.issued_at)
        )
    ]
    c = api_t.codes_table.c
    codes = [
        {**_app(apps, r.client_id), "scope": r.scope.split(), "expires_at": _instant(r.expires_at)}
        for r in s.execute(
            select(api_t.codes_table)
            # A used code is kept only to know a second use; it is not the person's to act on.
            .where(c.person == person, c.client_id.in_(ids), c.used_at.is_(None))
            .order_by(c.expires_at)
        )
    ]
    p = api_t.test_people_table.c
    testers = [
        _app(apps, client_id)
        for client_id in s.execute(
            select(p.client_id).where(p.person == person, p.client_id.in_(ids))
        ).scalars()
    ]
    return grants, tokens, codes, testers


def _budget(s: Session, party: str, person: str) -> dict[str, Any] | None:
    b = pets_t.privacy_budgets.c
    row = s.execute(
        select(pets_t.privacy_budgets).where(b.party == party, b.person_id == person)
    ).first()
    if row is None:
        return None
    return {
        "epsilon_total": row.epsilon_total / EPSILON_UNIT,
        "epsilon_spent": row.epsilon_spent / EPSILON_UNIT,
        "delta_total": row.delta_total / DELTA_UNIT,
        "delta_spent": row.delta_spent / DELTA_UNIT,
        "updated_at": _instant(row.updated_at),
    }


def _notices(s: Session, party: str, person: str) -> list[dict[str, Any]]:
    n = t.erasure_notices.c
    return [
        {"provider": r.provider, "erased_at": _instant(r.erased_at)}
        for r in s.execute(
            select(n.provider, n.erased_at)
            .where(n.recipient == party, n.person == person)
            .order_by(n.erased_at)
        )
    ]
