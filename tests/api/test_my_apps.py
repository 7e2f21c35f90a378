"""A person's own page of the apps they let in: each permission, taken back at once."""

from __future__ import annotations

import httpx
import pytest

from accord.scenario.population import CHIRP
from api.world import World, bearer, delegated_token

pytestmark = pytest.mark.integration

SOCIAL = "user.social:functional.service"
PRIVATE = "user.content.private:functional.service"


def _form(html: str) -> str:
    marker = 'name="form" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def test_a_person_takes_back_one_permission_then_the_app(
    world: World, client: httpx.Client
) -> None:
    person = "c0000070"
    token = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL, PRIVATE])
    page = client.get("/me/apps", params={"party": CHIRP})
    assert page.status_code == 200
    assert world.reelix.name in page.text
    assert page.text.count("Take back") == 2
    form = _form(page.text)
    back = client.post(
        f"/me/apps/{world.reelix.client_id}/revoke", data={"form": form, "scope": SOCIAL}
    )
    assert back.status_code == 303
    assert client.get("/v1/app", headers=bearer(token)).json()["token_scopes"] == [PRIVATE]
    client.post(f"/me/apps/{world.reelix.client_id}/revoke", data={"form": form})
    assert client.get("/v1/app", headers=bearer(token)).json()["token_scopes"] == []
    assert 'id="no-apps"' in client.get("/me/apps", params={"party": CHIRP}).text
    withdrawn = [c for c in world.accord.consents(CHIRP, person) if c.id.startswith("oauth-")]
    assert withdrawn
    assert all(c.withdrawn_at is not None for c in withdrawn)


def test_the_page_needs_the_person_signed_in_at_that_party(
    world: World, client: httpx.Client
) -> None:
    r = client.get("/me/apps", params={"party": CHIRP})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login")
    signed = client.post("/login", data={"person": "c0000071", "next": "/me/apps?party=chirp"})
    assert signed.status_code == 303
    assert client.get("/me/apps", params={"party": CHIRP}).status_code == 200
    # Signed in at Chirp is not signed in at Reelix.
    assert client.get("/me/apps", params={"party": "reelix"}).status_code == 303
    nowhere = client.post("/login", data={"person": "c0000071", "next": "/me/apps?party=acme"})
    assert nowhere.status_code == 400


def test_a_forged_revocation_form_is_refused(world: World, client: httpx.Client) -> None:
    person = "c0000072"
    token = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL])
    r = client.post(
        f"/me/apps/{world.reelix.client_id}/revoke", data={"form": "e30.forged", "scope": SOCIAL}
    )
    assert r.status_code == 400
    assert client.get("/v1/app", headers=bearer(token)).json()["token_scopes"] == [SOCIAL]


def test_a_vppa_consent_that_outlives_its_grant_is_still_listed_and_can_be_taken_back(
    world: World, client: httpx.Client
) -> None:
    """A 12-month VPPA consent behind a 90-day grant: once the grant lapses the consent still
    lets watch activity be shared, so the person must still see it, with its date, and stop it."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from accord.api import tables as api_t
    from accord.scenario.population import REELIX
    from api.world import consent

    person = "r0000120"
    watched = "user.behavior.media_consumption:functional.service"
    consent(client, world.chirp, person, [watched], months=12)
    given = [
        c
        for c in world.accord.consents(REELIX, person)
        if c.id.startswith("oauth-") and c.withdrawn_at is None
    ]
    assert len(given) == 1
    assert given[0].expires_at is not None
    # The app's 90 days pass; the consent's 12 months do not.
    lapsed = datetime.now(UTC) - timedelta(days=1)
    g = api_t.grants_table
    with world.accord.session() as s:
        s.execute(update(g).where(g.c.person == person).values(expires_at=lapsed))
    assert world.apps.live_scopes(world.chirp.client_id, person) == frozenset()
    assert given[0].in_force_at(datetime.now(UTC))

    page = client.get("/me/apps", params={"party": REELIX})
    assert page.status_code == 200
    assert f'data-app="{world.chirp.client_id}"' in page.text
    assert "access ended on" in page.text
    assert given[0].expires_at.strftime("%-d %B %Y") in page.text
    back = client.post(f"/me/apps/{world.chirp.client_id}/revoke", data={"form": _form(page.text)})
    assert back.status_code == 303
    after = world.accord.consents(REELIX, person)
    assert all(c.withdrawn_at is not None for c in after if c.id == given[0].id)
    assert 'id="no-apps"' in client.get("/me/apps", params={"party": REELIX}).text
