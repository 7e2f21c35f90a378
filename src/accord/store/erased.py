"""The suppression list: the people each party erased (table ``erased_people``).

Every read of the store's people joins against it (:func:`accord.store.filter_sql.not_erased`);
the loading paths leave listed people out (:func:`suppressed_of`); and the ledger asks
:func:`suppressed_refs` before it makes anyone a key, so no entry after an erasure can tie the
person to the log again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from accord.errors import StoreError, translate
from accord.store import tables as t


def suppressed_of(session: Session, parties: Iterable[str]) -> set[tuple[str, str]]:
    """The (party, person) pairs erased by ``parties``: read once per load, which then leaves
    them out as it builds its rows."""
    wanted = sorted(set(parties))
    if not wanted:
        return set()
    e = t.erased_people.c
    with translate(StoreError, "reading the suppression list"):
        rows = session.execute(select(e.party, e.person_id).where(e.party.in_(wanted))).all()
    return {(party, person) for party, person in rows}


def is_erased(session: Session | Connection, party: str, person: str) -> bool:
    """Whether ``party`` erased ``person`` (one primary-key lookup)."""
    e = t.erased_people.c
    with translate(StoreError, "reading the suppression list"):
        found = session.execute(
            select(e.person_id).where(e.party == party, e.person_id == person)
        ).first()
    return found is not None


# The ledger names a person "<party>/<id>" (accord.service.person_ref). Constant statements over
# this module's own table: one per backend, whatever the number of people.
_REFS_OF_ARRAY = (
    "SELECT r FROM unnest(%s::text[]) AS r JOIN erased_people AS e "
    "ON e.party = split_part(r, '/', 1) AND e.person_id = substr(r, strpos(r, '/') + 1)"
)
_REFS_OF_JSON = (
    "SELECT j.value FROM json_each(?) AS j JOIN erased_people AS e "
    "ON e.party = substr(j.value, 1, instr(j.value, '/') - 1) "
    "AND e.person_id = substr(j.value, instr(j.value, '/') + 1)"
)


def suppressed_refs(conn: Connection, refs: list[str]) -> set[str]:
    """Which of ``refs`` (people as the ledger names them) were erased.

    The ledger calls it, inside its append lock, for the people about to get a new key: on the
    first release about a million people, a million refs. The smaller side is read: the whole
    list when it is shorter than ``refs`` (most often it is empty), else the refs are joined
    against it in one statement.
    """
    if not refs:
        return set()
    e = t.erased_people.c
    listed = int(conn.execute(select(func.count()).select_from(t.erased_people)).scalar_one())
    if listed == 0:
        return set()
    if listed <= len(refs):
        wanted = set(refs)
        rows = conn.execute(select(e.party, e.person_id))
        return {ref for party, person in rows if (ref := f"{party}/{person}") in wanted}
    postgres = conn.dialect.name == "postgresql"
    cursor = conn.connection.cursor()
    try:
        cursor.execute(
            _REFS_OF_ARRAY if postgres else _REFS_OF_JSON, (refs if postgres else json.dumps(refs),)
        )
        return {str(ref) for (ref,) in cursor.fetchall()}
    finally:
        cursor.close()
