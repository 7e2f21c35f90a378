"""What the privacy centre's tests share: signing in, reading the pages' forms, and an oracle of
a person's ledger entries that reads the log itself, apart from the person index and the pages."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from urllib.parse import urlencode

import httpx
from sqlalchemy import text

from accord.service import Accord
from api.world import when_served

SUBJECT = b"accord/ledger/subject/v1\n"


def sign_in(client: httpx.Client, party: str, person: str, page: str = "/me") -> None:
    """Sign ``person`` in at ``party`` as the sign-in page does, for ``page``."""
    form = {"person": person, "next": f"{page}?{urlencode({'party': party})}"}
    r = when_served(lambda: client.post("/login", data=form))
    assert r.status_code == 303, r.text


def form_of(html: str) -> str:
    """The signed form value a page's forms carry."""
    found = re.search(r'name="form" value="([^"]+)"', html)
    assert found, "the page has no form"
    return found.group(1)


def shown_entries(html: str) -> set[int]:
    """The ledger indexes the releases page lists."""
    return {
        int(i)
        for i in re.findall(r'<li class="entry[^"]*" id="entry-\d+" data-index="(\d+)"', html)
    }


def entries_about(accord: Accord, party: str, person: str) -> set[int]:
    """Every leaf of the log that carries the person's subject tag: the person's key read from
    its table, every leaf read and its tag recomputed with HMAC-SHA256 (RFC 2104)."""
    ref = f"{party}/{person}"
    with accord.engine.connect() as conn:
        row = conn.execute(
            text("SELECT key FROM person_keys WHERE person_id = :p"), {"p": ref}
        ).first()
        if row is None:
            return set()
        key = bytes(row[0])
        leaves = conn.execute(text("SELECT idx, data FROM ledger_leaves ORDER BY idx")).all()
        # A leaf about many people holds their tags' root; the tags are stored beside it.
        stored: dict[int, bytes] = {}
        for index, tags in conn.execute(text("SELECT leaf_idx, tags FROM ledger_subjects")):
            stored[int(index)] = stored.get(int(index), b"") + bytes(tags)
    found = set()
    for index, data in leaves:
        tag = hmac.new(key, SUBJECT + str(index).encode(), hashlib.sha256).digest()
        listed = json.loads(bytes(data)).get("subjects", [])
        beside = stored.get(int(index), b"")
        if tag.hex() in listed or any(beside[i : i + 32] == tag for i in range(0, len(beside), 32)):
            found.add(int(index))
    return found
