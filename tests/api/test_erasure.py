"""Erasure over the partner API: the holding party erases with its app's own token; a recipient
reads its notice with its own, acknowledges it, and the notice is gone."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from accord.api import tables as api_t
from accord.client import AccordClient, ApiProblem
from accord.service import person_ref
from accord.store import tables as t
from api.world import World, app_token, bearer, delegated_token

pytestmark = pytest.mark.integration

SOCIAL = "user.social:functional.service"


def consenting(world: World, controller: str, recipient: str) -> str:
    """A person of ``controller`` holding a consent to ``recipient`` still in force."""
    with world.accord.session() as s:
        person = s.execute(
            select(t.consents.c.person)
            .where(
                t.consents.c.controller == controller,
                t.consents.c.recipient == recipient,
                t.consents.c.withdrawn_at.is_(None),
            )
            .order_by(t.consents.c.person)
            .limit(1)
        ).scalar_one()
    return str(person)


def test_the_holder_erases_and_the_recipient_is_told(world: World, client: httpx.Client) -> None:
    person = consenting(world, "chirp", "reelix")
    assert world.accord.ledger.key_of(person_ref("chirp", person)) is not None
    chirp = app_token(client, world.chirp, world.chirp_secret)
    reelix = app_token(client, world.reelix, world.reelix_secret)
    # A recipient cannot erase anyone at the party that holds them: Reelix holds no such person.
    r = client.post(f"/v1/people/{person}/erasure", headers=bearer(reelix))
    assert r.status_code == 422, r.text
    assert "holds no person" in r.json()["detail"]
    r = client.post(f"/v1/people/{person}/erasure", headers=bearer(chirp))
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["party"] == "chirp"
    assert done["withdrawn"] >= 1
    assert "reelix" in done["recipients"]
    assert done["sealed"] is True
    assert world.accord.ledger.key_of(person_ref("chirp", person)) is None
    assert world.accord.consents("chirp", person) == []
    notices = client.get("/v1/erasure-notices", headers=bearer(reelix)).json()
    (notice,) = [n for n in notices if n["person"] == person]
    assert notice["provider"] == "chirp"
    # Only the recipient's own notices: Chirp sees none of Reelix's, and cannot acknowledge them.
    assert client.get("/v1/erasure-notices", headers=bearer(chirp)).json() == []
    r = client.delete(f"/v1/erasure-notices/{notice['id']}", headers=bearer(chirp))
    assert r.status_code == 404, r.text
    r = client.delete(f"/v1/erasure-notices/{notice['id']}", headers=bearer(reelix))
    assert r.status_code == 200, r.text
    left = client.get("/v1/erasure-notices", headers=bearer(reelix)).json()
    assert [n for n in left if n["person"] == person] == []
    # Asked again: already erased, nothing more happens.
    again = client.post(f"/v1/people/{person}/erasure", headers=bearer(chirp)).json()
    assert again["already"] is True


def test_an_unknown_person_is_a_clear_problem(world: World, client: httpx.Client) -> None:
    chirp = app_token(client, world.chirp, world.chirp_secret)
    r = client.post("/v1/people/c9999999/erasure", headers=bearer(chirp))
    assert r.status_code == 422
    assert "holds no person 'c9999999'" in r.json()["detail"]


def test_a_person_token_cannot_erase_or_read_notices(world: World, client: httpx.Client) -> None:
    token = delegated_token(client, world.reelix, world.reelix_secret, "c0000050", [SOCIAL])
    for r in (
        client.post("/v1/people/c0000050/erasure", headers=bearer(token)),
        client.get("/v1/erasure-notices", headers=bearer(token)),
    ):
        assert r.status_code == 403, r.text
        assert r.json()["rules"] == ["api:no-delegation"]
    assert world.accord.ledger.key_of(person_ref("chirp", "c0000050")) is not None


def test_no_token_no_erasure(client: httpx.Client) -> None:
    assert client.post("/v1/people/c0000001/erasure").status_code == 401
    assert client.get("/v1/erasure-notices").status_code == 401


def test_through_the_client_the_member_stops_flowing_and_chirp_is_told(
    world: World, base_url: str
) -> None:
    with (
        AccordClient.for_app(base_url, world.chirp.client_id, world.chirp_secret) as chirp,
        AccordClient.for_app(base_url, world.reelix.client_id, world.reelix_secret) as reelix,
    ):
        before = chirp.watch_activity()
        released = before["receipts"][-1]["index"]
        # A member the ledger says this release was about, with the events it carried.
        with world.accord.session() as s:
            members = (
                s.execute(
                    select(t.consents.c.person)
                    .where(t.consents.c.controller == "reelix", t.consents.c.recipient == "chirp")
                    .distinct()
                    .order_by(t.consents.c.person)
                )
                .scalars()
                .all()
            )
        member = next(
            m
            for m in members
            if released in world.accord.ledger.entries_about(person_ref("reelix", m))
        )
        (events,) = world.sql(
            "reelix", "SELECT count(*) FROM watch_events WHERE member_id = ?", member
        )[0]
        assert events > 0
        done = reelix.erase(member, known_as={"chirp": "linked-elsewhere"})
        assert "chirp" in done["recipients"]
        after = chirp.watch_activity()
        assert len(after["rows"]) == len(before["rows"]) - events
        assert after["people"] == before["people"] - 1
        (notice,) = [n for n in chirp.erasure_notices() if n["person"] == "linked-elsewhere"]
        assert notice["provider"] == "reelix"
        chirp.acknowledge(notice["id"])
        assert [n for n in chirp.erasure_notices() if n["id"] == notice["id"]] == []
        # Acknowledging again (a reply lost on the way) changes nothing; another's id is 404.
        chirp.acknowledge(notice["id"])
        assert [n for n in chirp.erasure_notices() if n["id"] == notice["id"]] == []
        with pytest.raises(ApiProblem) as gone:
            chirp.acknowledge("0" * 32)
        assert gone.value.status == 404


def test_the_person_grants_and_tokens_go_with_them(world: World, client: httpx.Client) -> None:
    person = "c0000060"
    token = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL])
    assert client.get("/v1/me/permissions", headers=bearer(token)).status_code == 200
    chirp = app_token(client, world.chirp, world.chirp_secret)
    done = client.post(f"/v1/people/{person}/erasure", headers=bearer(chirp)).json()
    assert done["deleted"]["api_grants"] >= 1
    assert done["deleted"]["api_tokens"] >= 1
    # The partner's token for the person stops working at once: it is gone.
    assert client.get("/v1/me/permissions", headers=bearer(token)).status_code == 401
    with world.accord.session() as s:
        grants = s.execute(
            select(api_t.grants_table.c.id).where(api_t.grants_table.c.person == person)
        )
        assert grants.all() == []
