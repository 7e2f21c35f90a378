"""Attack-style requests name people; the entries they leave in the ledger never do.

Each request below names a person in some field of its body (an anchor, a condition, a row, a
person it is not acting for). Whatever the answer, refused or not, no leaf appended while it was
handled holds that person's id.
"""

from __future__ import annotations

import re

import httpx
import pytest

from api.world import World, app_token, bearer, delegated_token
from attacks.helpers import friends_of

pytestmark = pytest.mark.integration

EXCHANGES = "/v1/agreements/chirp-reelix/clauses/{clause}/exchanges"
SOCIAL = "user.social:functional.service"
PRIVATE_SEND = "user.content.private:functional.service"


NOBODYS = {  # the app's own token, on nobody's behalf
    # The friend picker pinned to one person by a condition alone.
    "condition": ("friend-picker", {**friends_of("c0000002"), "subjects": {"kind": "all"}}),
    # Someone's friends, asked for outright.
    "anchor": ("friend-picker", friends_of("c0000002")),
    # Someone's friends with no condition pinning them.
    "unpinned": ("friend-picker", {**friends_of("c0000002"), "where": None}),
    # Acting for a person without their token.
    "on behalf": ("friend-picker", {**friends_of("c0000002"), "on_behalf_of": "c0000002"}),
    # A message written as someone, on nobody's behalf.
    "rows": (
        "send-recommendation",
        {
            "collection": "messages",
            "operation": "write",
            "purpose": "functional.service",
            "categories": ["user.content.private"],
            "rows": [{"thread_id": "t1", "sender_id": "c0000002", "body": "hi"}],
        },
    ),
}


def leaves_since(world: World, size: int) -> list[str]:
    with world.accord.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT data FROM ledger_leaves WHERE idx >= ? ORDER BY idx", (size,)
        )
        return [bytes(data).decode() for (data,) in rows]


def naming(leaves: list[str], people: set[str]) -> list[str]:
    pattern = re.compile(r"(?<![\w.@-])(" + "|".join(map(re.escape, people)) + r")(?![\w@-])")
    return [leaf for leaf in leaves if pattern.search(leaf)]


@pytest.mark.parametrize("case", sorted(NOBODYS))
def test_requests_on_nobodys_behalf_leave_no_id_in_the_ledger(
    world: World, client: httpx.Client, case: str
) -> None:
    clause, body = NOBODYS[case]
    token = app_token(client, world.reelix, world.reelix_secret)
    size = world.accord.ledger.head().size
    r = client.post(EXCHANGES.format(clause=clause), json=body, headers=bearer(token))
    assert r.status_code in {200, 403, 422}, r.text
    written = leaves_since(world, size)
    assert written  # the refusal, or the decision and its release, is logged
    if r.status_code != 200:
        assert all('"allowed":false' in leaf for leaf in written)
    assert naming(written, {"c0000002"}) == []


def test_a_person_token_naming_someone_else_leaves_no_id_in_the_ledger(
    world: World, client: httpx.Client
) -> None:
    token = delegated_token(
        client, world.reelix, world.reelix_secret, "c0000041", [SOCIAL, PRIVATE_SEND]
    )
    size = world.accord.ledger.head().size
    for clause, body in (
        ("friend-picker", friends_of("c0000042")),  # someone else's friends
        ("friend-picker", {**friends_of("c0000041"), "on_behalf_of": "c0000042"}),
        (
            "send-recommendation",  # a message as someone else, into a thread
            {
                "collection": "messages",
                "operation": "write",
                "purpose": "functional.service",
                "categories": ["user.content.private"],
                "rows": [{"thread_id": "t-x", "sender_id": "c0000042", "body": "hi"}],
            },
        ),
    ):
        r = client.post(EXCHANGES.format(clause=clause), json=body, headers=bearer(token))
        assert r.status_code in {403, 422}, r.text
    written = leaves_since(world, size)
    assert len(written) >= 3
    assert naming(written, {"c0000041", "c0000042"}) == []
