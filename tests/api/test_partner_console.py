"""The partner console: a company signs in with one of its apps' credentials and sees its own
agreements, apps and their review, its usage counted from the ledger and what it received; it sees
no other company's apps and no person, and the roles (person, partner) do not open each other's
pages."""

from __future__ import annotations

import re

import httpx
import pytest

from api.world import World, app_token, bearer

pytestmark = pytest.mark.integration

LINK = "/v1/agreements/chirp-reelix/clauses/account-link/exchanges"
READ = {
    "collection": "linked_accounts",
    "purpose": "essential.service.authentication",
    "categories": ["user.account.linked"],
    "subjects": {"kind": "people", "people": ["r0000001"]},
}
PERSON_ID = re.compile(r"\b[cr]\d{7}\b")


def _form(html: str) -> str:
    marker = 'name="form" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def sign_in(client: httpx.Client, client_id: str, secret: str) -> httpx.Response:
    page = client.get("/partner/login")
    assert page.status_code == 200
    return client.post(
        "/partner/login",
        data={"client_id": client_id, "client_secret": secret, "form": _form(page.text)},
    )


def usage(html: str, client_id: str) -> tuple[int, int]:
    """The allowed and refused requests the usage table shows for an app."""
    row = re.search(
        rf'<tr data-app="{client_id}">.*?<td class="n">([\d,]+)</td><td class="n">([\d,]+)</td>',
        html,
        re.S,
    )
    assert row, client_id
    return int(row.group(1).replace(",", "")), int(row.group(2).replace(",", ""))


def test_without_signing_in_the_console_asks_for_it(client: httpx.Client) -> None:
    r = client.get("/partner")
    assert r.status_code == 303
    assert r.headers["location"] == "/partner/login"


@pytest.mark.parametrize("case", ["wrong secret", "unknown app", "public app", "no secret"])
def test_a_sign_in_that_does_not_match_is_refused_the_same_way(
    world: World, client: httpx.Client, case: str
) -> None:
    client_id, secret = {
        "wrong secret": (world.chirp.client_id, "not-the-secret"),
        "unknown app": ("no-such-client", world.chirp_secret),
        "public app": (world.public.client_id, "anything"),
        "no secret": (world.chirp.client_id, ""),
    }[case]
    r = sign_in(client, client_id, secret)
    assert r.status_code in {401, 422}
    if r.status_code == 401:
        assert "do not match an app" in r.text
    assert "accord_partner" not in r.headers.get("set-cookie", "")
    assert client.get("/partner").status_code == 303


def test_a_sign_in_form_from_elsewhere_is_refused(world: World, client: httpx.Client) -> None:
    r = client.post(
        "/partner/login",
        data={"client_id": world.chirp.client_id, "client_secret": world.chirp_secret},
    )
    assert r.status_code == 400
    assert client.get("/partner").status_code == 303


def test_a_company_sees_its_agreements_and_its_apps_with_their_review(
    world: World, client: httpx.Client
) -> None:
    assert sign_in(client, world.reelix.client_id, world.reelix_secret).status_code == 303
    html = client.get("/partner").text
    assert "Signed in for <strong>Reelix" in html or "Signed in for <strong>reelix" in html
    assert 'id="ag-chirp-reelix"' in html
    # Reelix's three apps, and not Chirp's.
    for app in (world.reelix, world.unreviewed, world.public):
        assert f'data-app="{app.client_id}"' in html
    assert world.chirp.client_id not in html
    # The world approved every permission of the Reelix app and none of the beta's.
    offered = len(world.apps.offered(world.reelix))
    section = html.split(f'data-app="{world.reelix.client_id}"', 1)[1].split("</article>", 1)[0]
    assert section.count(">approved<") == offered
    beta = html.split(f'data-app="{world.unreviewed.client_id}"', 1)[1].split("</article>", 1)[0]
    assert beta.count("not yet approved") == len(world.apps.offered(world.unreviewed))
    assert not PERSON_ID.search(html)


def test_usage_counts_the_requests_the_apps_made_allowed_and_refused(
    world: World, client: httpx.Client
) -> None:
    assert sign_in(client, world.chirp.client_id, world.chirp_secret).status_code == 303
    before = usage(client.get("/partner").text, world.chirp.client_id)
    token = app_token(client, world.chirp, world.chirp_secret)
    for _ in range(3):
        r = client.post(LINK, json=READ, headers=bearer(token))
        assert r.status_code == 200, r.text
    wrong = {**READ, "purpose": "marketing.advertising.third_party.targeted"}
    refused = client.post(LINK, json=wrong, headers=bearer(token))
    assert refused.status_code == 403, refused.text
    html = client.get("/partner").text
    assert usage(html, world.chirp.client_id) == (before[0] + 3, before[1] + 1)
    # What Chirp received through account-link is listed, with its ledger index.
    receipts = [receipt["index"] for receipt in r.json()["receipts"]]
    assert any(f"<code>{i}</code>" in html for i in receipts)
    assert not PERSON_ID.search(html)


def test_a_person_session_opens_no_partner_page_and_a_partner_session_no_persons(
    world: World, client: httpx.Client
) -> None:
    assert (
        client.post("/login", data={"person": "c0000005", "next": "/me?party=chirp"}).status_code
        == 303
    )
    assert client.get("/partner").status_code == 303
    client.cookies.clear()
    assert sign_in(client, world.chirp.client_id, world.chirp_secret).status_code == 303
    me = client.get("/me", params={"party": "chirp"})
    assert me.status_code == 303
    assert me.headers["location"].startswith("/login")
    # The company shown is the cookie's, whatever the address asks for.
    html = client.get("/partner", params={"party": "reelix"}).text
    assert world.reelix.client_id not in html


def test_signing_out_needs_the_consoles_own_form(world: World, client: httpx.Client) -> None:
    assert sign_in(client, world.chirp.client_id, world.chirp_secret).status_code == 303
    forged = client.post("/partner/logout", data={"form": "forged"})
    assert forged.status_code == 400
    assert client.get("/partner").status_code == 200
    out = client.post("/partner/logout", data={"form": _form(client.get("/partner").text)})
    assert out.status_code == 303
    client.cookies.clear()  # the browser drops the deleted cookie
    assert client.get("/partner").status_code == 303
