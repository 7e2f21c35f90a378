"""The consent screens in a real browser (Debian's Chromium, driven by Playwright)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from accord.api.scopes import Scope
from accord.scenario.population import CHIRP, REELIX
from api.world import REDIRECT, World, bearer, pkce

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SOCIAL = "user.social:functional.service"
PRIVATE = "user.content.private:functional.service"
WATCHED = "user.behavior.media_consumption:functional.service"
TARGETED = "user.behavior.media_consumption:marketing.advertising.third_party.targeted"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


def authorize_url(base_url: str, client_id: str, scopes: list[str]) -> tuple[str, str]:
    verifier, challenge = pkce()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": " ".join(scopes),
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{base_url}/oauth/authorize?{query}", verifier


def catch_redirect(page: Page) -> list[str]:
    """Answer the app's redirect URI in the browser, keeping the URL it was sent to."""
    seen: list[str] = []

    def answer(route: Route) -> None:
        seen.append(route.request.url)
        route.fulfill(status=200, body="back in the app")

    page.route(f"{REDIRECT}**", answer)
    return seen


def sign_in(page: Page, person: str) -> None:
    page.fill("#person", person)
    page.click("button[type=submit]")


def test_a_person_allows_one_permission_of_two(
    world: World, base_url: str, browser: Browser
) -> None:
    context = browser.new_context()
    page = context.new_page()
    seen = catch_redirect(page)
    url, verifier = authorize_url(base_url, world.reelix.client_id, [SOCIAL, PRIVATE])
    page.goto(url)
    sign_in(page, "c0000060")
    boxes = page.locator("input[type=checkbox]")
    assert boxes.count() == 2
    assert not boxes.nth(0).is_checked()
    assert not boxes.nth(1).is_checked()
    page.check(f"input[value='{SOCIAL}']")
    page.click("button[value=allow]")
    page.wait_for_url(f"{REDIRECT}**")
    context.close()
    code = parse_qs(urlsplit(seen[0]).query)["code"][0]
    with httpx.Client(base_url=base_url) as http:
        token = http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=(world.reelix.client_id, world.reelix_secret),
        ).json()
        assert token["scope"] == SOCIAL
        me = http.get("/v1/me/permissions", headers=bearer(token["access_token"])).json()
    assert [p["scope"] for p in me] == [SOCIAL]
    given = [c for c in world.accord.consents(CHIRP, "c0000060") if c.id.startswith("oauth-")]
    assert [sorted(c.categories) for c in given] == [["user.social"]]


def test_gpc_and_the_separate_vppa_screen(world: World, base_url: str, browser: Browser) -> None:
    member = "r0000061"
    context = browser.new_context(extra_http_headers={"Sec-GPC": "1"})
    page = context.new_page()
    seen = catch_redirect(page)
    url, _ = authorize_url(base_url, world.chirp.client_id, [WATCHED, TARGETED])
    page.goto(url)
    sign_in(page, member)
    assert page.locator("#gpc-notice").is_visible()
    assert "opted you out of the sale and sharing" in page.content()
    assert page.locator("input[type=checkbox]").count() == 0
    page.click("button[value=allow]")
    # The VPPA consent, on its own page, with its duration.
    assert page.locator("h1").inner_text().startswith("Share what you watch")
    assert page.locator("select#months option").count() == 24
    page.select_option("select#months", "6")
    # Advertising is not offered under GPC; sharing for the feed is its own box.
    assert page.locator("input[type=checkbox]").count() == 1
    page.check(f"input[value='{WATCHED}']")
    page.click("button[value=allow]")
    page.wait_for_url(f"{REDIRECT}**")
    context.close()
    assert "code" in parse_qs(urlsplit(seen[0]).query)
    given = [c for c in world.accord.consents(REELIX, member) if c.id.startswith("oauth-")]
    (vppa,) = given
    assert vppa.purposes == frozenset({"functional.service"})
    assert vppa.expires_at is not None
    assert 180 <= (vppa.expires_at - vppa.given_at).days <= 184


def test_a_person_takes_a_permission_back_on_their_apps_page(
    world: World, base_url: str, browser: Browser
) -> None:
    context = browser.new_context()
    page = context.new_page()
    catch_redirect(page)
    url, _ = authorize_url(base_url, world.reelix.client_id, [SOCIAL, PRIVATE])
    page.goto(url)
    sign_in(page, "c0000062")
    page.check(f"input[value='{SOCIAL}']")
    page.check(f"input[value='{PRIVATE}']")
    page.click("button[value=allow]")
    page.wait_for_url(f"{REDIRECT}**")
    page.goto(f"{base_url}/me/apps?party={CHIRP}")
    assert page.locator("button", has_text="Take back").count() == 2
    page.locator(f"li[data-scope='{SOCIAL}']").locator("button").click()
    page.wait_for_load_state()
    assert page.locator("button", has_text="Take back").count() == 1
    page.click("button.remove")
    page.wait_for_load_state()
    assert page.locator("#no-apps").is_visible()
    context.close()
    assert world.apps.live_scopes(world.reelix.client_id, "c0000062") == frozenset()


def offline(context: BrowserContext, base_url: str) -> list[str]:
    """Cut the browser off from everything but this server; the URLs it tried are kept."""
    tried: list[str] = []

    def guard(route: Route) -> None:
        if route.request.url.startswith(f"{base_url}/"):
            route.continue_()
        else:
            tried.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", guard)
    return tried


def watch_console(page: Page) -> list[str]:
    """The page's console errors (a script or style sheet refused by the policy shows there)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_the_api_reference_renders_without_the_internet(base_url: str, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tried = offline(context, base_url)
    page = context.new_page()
    errors = watch_console(page)
    page.goto(f"{base_url}/docs")
    exchanges = page.locator(
        ".opblock-summary-path", has_text="/v1/agreements/{agreement}/clauses/{clause}/exchanges"
    )
    exchanges.wait_for(state="visible")
    assert page.locator(".opblock").count() >= 10
    assert page.locator(".info .title", has_text="Accord partner API").is_visible()
    context.close()
    assert tried == []
    assert errors == []


def test_a_person_finds_their_apps_from_the_start_page(base_url: str, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tried = offline(context, base_url)
    page = context.new_page()
    errors = watch_console(page)
    page.goto(f"{base_url}/")
    assert page.get_by_role("heading", level=1).inner_text() == "Accord partner API"
    assert page.get_by_role("main").is_visible()
    assert page.get_by_role("banner").is_visible()
    # The style sheet is this server's own and the policy lets it in.
    button = page.get_by_role("link", name="See your apps")
    assert button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(11, 87, 208)"
    assert page.get_by_role("link", name="API reference").get_attribute("href") == "/docs"
    button.click()
    page.wait_for_url(f"{base_url}/me/apps")
    assert page.get_by_role("heading", level=1).inner_text() == "Which account do you use?"
    page.get_by_role("link", name=f"Continue with {CHIRP}").click()
    assert page.get_by_role("heading", level=1).inner_text() == f"Sign in to {CHIRP}"
    page.get_by_label(f"Your {CHIRP} id").fill("c0000063")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/me/apps?party={CHIRP}")
    assert page.get_by_role("heading", level=1).inner_text() == "Apps you let in"
    assert page.locator("#no-apps").is_visible()
    page.goto(f"{base_url}/me/apps?party=acme")
    assert page.get_by_role("heading", level=1).inner_text() == "No such account"
    page.goto(f"{base_url}/no/such/page")
    assert page.get_by_role("heading", level=1).inner_text() == "Page not found"
    context.close()
    assert tried == []
    assert [e for e in errors if "404" not in e] == []


def test_a_person_shares_for_the_feed_and_not_for_advertising(
    world: World, base_url: str, browser: Browser
) -> None:
    member = "r0000092"
    context = browser.new_context()
    page = context.new_page()
    catch_redirect(page)
    url, _ = authorize_url(base_url, world.chirp.client_id, [WATCHED, TARGETED])
    page.goto(url)
    sign_in(page, member)
    # Nothing to tick on the first page, and nothing said about ticking.
    assert page.locator("input[type=checkbox]").count() == 0
    assert "ticked" not in page.locator("main").inner_text().lower()
    page.click("button[value=allow]")
    boxes = page.locator("input[type=checkbox]")
    assert boxes.count() == 2
    assert not boxes.nth(0).is_checked()
    assert not boxes.nth(1).is_checked()
    text = page.locator("main").inner_text()
    assert "Advertising" in text
    assert "user.behavior" not in text
    page.check(f"input[value='{WATCHED}']")
    page.click("button[value=allow]")
    page.wait_for_url(f"{REDIRECT}**")
    given = [c for c in world.accord.consents(REELIX, member) if c.id.startswith("oauth-")]
    assert [sorted(c.purposes) for c in given] == [["functional.service"]]
    assert world.apps.live_scopes(world.chirp.client_id, member) == {Scope.parse(WATCHED)}
    # The apps page shows the consent's own end (12 months), and the opt-out, reversible.
    page.goto(f"{base_url}/me/apps?party={REELIX}")
    (consent,) = given
    assert consent.expires_at is not None
    until = page.locator(f"li[data-scope='{WATCHED}'] .until").inner_text()
    assert consent.expires_at.strftime("%-d %B %Y") in until
    page.click("#opt-out")
    page.wait_for_selector("#opt-in")
    assert world.accord.standing(REELIX, member).opted_out
    page.click("#opt-in")
    page.wait_for_selector("#opt-out")
    assert not world.accord.standing(REELIX, member).opted_out
    context.close()
