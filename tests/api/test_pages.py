"""The pages a newcomer meets: the start page, the API reference served by the server itself,
the choice of account before a person's apps, and errors a browser can read."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from accord.scenario.population import CHIRP, REELIX
from api.world import World

pytestmark = pytest.mark.integration

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the text inside each script."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self._script: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script = attributes
            self.scripts.append((attributes, ""))

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attributes, text = self.scripts[-1]
            self.scripts[-1] = (attributes, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def links(self) -> set[str]:
        return {a["href"] for tag, a in self.tags if tag == "a" and "href" in a}

    def has(self, tag: str) -> bool:
        return any(t == tag for t, _ in self.tags)


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def assert_hardened(r: httpx.Response) -> None:
    """The headers every response keeps: no framing, no sniffing, one policy, no inline
    script unless by a nonce."""
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    policies = r.headers.get_list("content-security-policy")
    assert len(policies) == 1, policies
    directives = dict(d.strip().split(" ", 1) for d in policies[0].split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'"
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "*" not in policies[0]


def test_the_start_page_says_what_this_server_is_and_where_to_go(
    world: World, client: httpx.Client
) -> None:
    r = client.get("/", headers=BROWSER)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "Accept" in r.headers["vary"]
    assert_hardened(r)
    page = parse(r.text)
    assert page.has("header")
    assert page.has("main")
    assert ("html", {"lang": "en"}) in page.tags
    assert {
        "/docs",
        "/openapi.json",
        "/.well-known/oauth-authorization-server",
        "/v1/agreements",
        "/me/apps",
    } <= page.links()
    assert f"serving {CHIRP} and {REELIX}" in " ".join(r.text.split())
    # The published agreement is listed; the draft one, never reviewed, is not.
    assert "Chirp and Reelix partnership" in r.text
    assert "chirp-reelix-titan" not in r.text
    assert "Titan" not in r.text


def test_the_start_page_links_only_to_pages_that_answer(client: httpx.Client) -> None:
    links = parse(client.get("/", headers=BROWSER).text).links()
    assert "/docs" in links
    for href in sorted(links):
        assert client.get(href, headers=BROWSER).status_code == 200, href


def test_a_json_client_gets_an_index_of_the_same_links(client: httpx.Client) -> None:
    r = client.get("/", headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    index = r.json()
    base = str(client.base_url).rstrip("/")
    assert index["docs"] == f"{base}/docs"
    assert index["oauth_authorization_server"] == f"{base}/.well-known/oauth-authorization-server"
    assert index["agreements"] == f"{base}/v1/agreements"
    assert client.get(index["agreements"]).json()[0]["id"] == "chirp-reelix"
    assert client.get(index["openapi"]).json()["info"]["title"] == "Accord partner API"


def test_the_api_reference_is_served_by_this_server(client: httpx.Client) -> None:
    r = client.get("/docs", headers=BROWSER)
    assert r.status_code == 200
    assert_hardened(r)
    page = parse(r.text)
    assert "cdn" not in r.text
    assert "fonts.googleapis" not in r.text
    fetched = [a["src"] for t, a in page.tags if t == "script" and "src" in a]
    fetched += [a["href"] for t, a in page.tags if t == "link" and "href" in a]
    assert len(fetched) == 3  # Swagger UI's script, its style sheet, its icon
    for url in fetched:
        assert url.startswith("/"), url
        got = client.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > 100
    # The one inline script starts Swagger UI over this server's document; it runs only by the
    # nonce the policy names, a new one at each request.
    (policy,) = r.headers.get_list("content-security-policy")
    (nonce,) = re.findall(r"'nonce-([^']+)'", policy)
    inline = [(a, text) for a, text in page.scripts if "src" not in a]
    assert len(inline) == 1
    assert inline[0][0].get("nonce") == nonce
    assert "/openapi.json" in inline[0][1]
    again = client.get("/docs").headers["content-security-policy"]
    assert nonce not in again


def test_my_apps_without_a_party_asks_which_account(client: httpx.Client) -> None:
    r = client.get("/me/apps", headers=BROWSER)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert_hardened(r)
    assert "Which account" in r.text
    choices = {
        parse_qs(urlsplit(href).query)["party"][0]
        for href in parse(r.text).links()
        if href.startswith("/me/apps?")
    }
    assert choices == {CHIRP, REELIX}
    # Each choice leads to that party's sign-in, which names the party.
    chosen = client.get("/me/apps", params={"party": REELIX})
    assert chosen.status_code == 303
    login = client.get(chosen.headers["location"])
    assert login.status_code == 200
    assert f"Sign in to {REELIX}" in login.text


def test_an_unknown_party_gets_a_page_naming_the_parties_there_are(client: httpx.Client) -> None:
    r = client.get("/me/apps", params={"party": "acme"}, headers=BROWSER)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert f"no party named 'acme' here. It serves {CHIRP} and {REELIX}." in html.unescape(r.text)
    assert {f"/me/apps?party={CHIRP}", f"/me/apps?party={REELIX}"} <= parse(r.text).links()
    # Also for a client that names no HTML: this is a page, not an API.
    assert (
        client.get("/me/apps", params={"party": "acme"})
        .headers["content-type"]
        .startswith("text/html")
    )
    nowhere = client.post("/login", data={"person": "c0000001", "next": "/me/apps?party=acme"})
    assert nowhere.status_code == 400
    assert f"It serves {CHIRP} and {REELIX}." in nowhere.text


def test_a_browser_gets_errors_as_pages_and_the_api_keeps_problem_documents(
    client: httpx.Client,
) -> None:
    missing = client.get("/no/such/page", headers=BROWSER)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "Page not found" in missing.text
    assert "/no/such/page" in missing.text
    assert "/" in parse(missing.text).links()
    assert_hardened(missing)
    wrong_method = client.get("/me/apps/some-app/revoke", headers=BROWSER)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith("text/html")
    assert "POST" in wrong_method.headers["allow"]
    incomplete = client.post("/login", data={"next": "/me/apps"}, headers=BROWSER)
    assert incomplete.status_code == 422
    assert incomplete.headers["content-type"].startswith("text/html")
    assert "person" in incomplete.text
    # Not asked for HTML, or on the API's own paths: problem documents, as before.
    assert client.get("/no/such/page").headers["content-type"] == "application/problem+json"
    for path in ("/v1/nothing", "/oauth/nothing", "/.well-known/nothing"):
        r = client.get(path, headers=BROWSER)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json", path
        assert r.json()["instance"] == path
    unauthenticated = client.get("/v1/app", headers=BROWSER)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"] == "application/problem+json"
