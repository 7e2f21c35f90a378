"""Every HTML page of the app checked with axe-core (the copy the axe-playwright-python package
ships, so no network is needed) in Debian's Chromium: no serious or critical violation.

The pages: the start page, sign-in, the choice of account, both consent screens (the permissions
and, on its own, the VPPA's), the person's apps, the privacy centre's three pages, an erasure
request's page in each state, an error page and the auditor's console. ``/docs`` is Swagger UI's
page, not Accord's, and is not checked here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import update

from accord import erasure
from accord.scenario.population import CHIRP
from accord.store import tables as t
from api.test_browser import (
    CHROMIUM_ARGS,
    PRIVATE,
    SOCIAL,
    WATCHED,
    authorize_url,
    catch_redirect,
    sign_in,
    watch_console,
)
from api.test_erasure import consenting
from api.test_privacy_centre import fresh_watchers
from api.world import World

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SERIOUS = {"serious", "critical"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    c = browser.new_context(viewport={"width": 1280, "height": 900})
    yield c
    c.close()


@pytest.fixture(scope="module")
def axe() -> Axe:
    return Axe()


def serious(axe: Axe, page: Page) -> list[str]:
    """The serious and critical violations axe finds on the page, one line each."""
    found: dict[str, Any] = axe.run(page).response
    assert found["testEngine"]["name"] == "axe-core"
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in found["violations"]
        if v["impact"] in SERIOUS
    ]


def check(axe: Axe, page: Page, errors: list[str]) -> None:
    page.wait_for_load_state("networkidle")
    assert serious(axe, page) == [], page.url
    assert errors == [], page.url


def test_axe_runs_offline_and_finds_a_violation(axe: Axe, context: BrowserContext) -> None:
    """The check itself works: a page with an unlabelled field and an image without text fails."""
    page = context.new_page()
    context.route("**/*", lambda route: route.abort("internetdisconnected"))
    page.set_content('<html lang="en"><body><main><input type="text"><img src="x.png"></main>')
    ids = {line.split(" ")[0] for line in serious(axe, page)}
    assert {"label", "image-alt"} <= ids


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/login?next=/me",
        "/me",  # no one signed in: the choice of account
        "/me?party=nobody",  # an error page
        "/audit",
        "/audit/flows",
        "/audit/flows?agreement=chirp-reelix-titan",
        "/audit/money",
        "/audit/ledger",
        "/audit/ledger?old=0&new=1",
    ],
)
def test_public_pages(axe: Axe, context: BrowserContext, base_url: str, path: str) -> None:
    page = context.new_page()
    errors = watch_console(page)
    page.goto(f"{base_url}{path}")
    if path.startswith("/me?party=nobody"):
        errors.clear()  # the browser logs the 404 itself
    if "old=" in path:
        page.locator("#consistency-result:not([data-state=pending])").wait_for()
    check(axe, page, errors)


def test_the_consent_screen_and_the_persons_pages(
    world: World, axe: Axe, context: BrowserContext, base_url: str
) -> None:
    page = context.new_page()
    errors = watch_console(page)
    catch_redirect(page)
    url, _ = authorize_url(base_url, world.reelix.client_id, [SOCIAL, PRIVATE])
    page.goto(url)
    check(axe, page, errors)  # sign-in, on the way to the screen
    sign_in(page, "c0000090")
    page.locator("button[value=allow]").wait_for()
    check(axe, page, errors)  # the consent screen
    page.check(f"input[value='{SOCIAL}']")
    page.click("button[value=allow]")
    page.wait_for_url("http://localhost/**")
    for path in (f"/me/apps?party={CHIRP}", "/me", "/me/releases", "/me/export"):
        page.goto(f"{base_url}{path}")
        check(axe, page, errors)


def test_the_vppa_screen(world: World, axe: Axe, context: BrowserContext, base_url: str) -> None:
    member = fresh_watchers(world)[-1]
    page = context.new_page()
    errors = watch_console(page)
    catch_redirect(page)
    url, _ = authorize_url(base_url, world.chirp.client_id, [WATCHED])
    page.goto(url)
    sign_in(page, member)
    page.click("button[value=allow]")
    page.locator("select#months").wait_for()
    check(axe, page, errors)


def test_the_partner_console(
    world: World, axe: Axe, context: BrowserContext, base_url: str, tmp_path: Path
) -> None:
    page = context.new_page()
    errors = watch_console(page)
    page.goto(f"{base_url}/partner/login")
    check(axe, page, errors)
    page.fill("#client_id", world.reelix.client_id)
    page.fill("#client_secret", world.reelix_secret)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/partner")
    page.screenshot(path=str(tmp_path / "partner-console.png"), full_page=True)
    check(axe, page, errors)


def test_the_erasure_request_page(
    world: World, axe: Axe, context: BrowserContext, base_url: str
) -> None:
    """Each state a recipient's notice can be in: told, overdue (with the button to tell it
    again), acknowledged."""
    person = consenting(world, "chirp", "reelix")
    done = erasure.erase(world.accord, "chirp", person)
    assert done.request is not None
    page = context.new_page()
    errors = watch_console(page)
    page.goto(f"{base_url}/me/erasure/{done.request}?done=erased")
    check(axe, page, errors)
    with world.accord.session() as s:
        s.execute(
            update(t.erasure_notices)
            .where(t.erasure_notices.c.request == done.request)
            .values(due_at=datetime.now(UTC) - timedelta(days=1))
        )
    page.goto(f"{base_url}/me/erasure/{done.request}")
    assert page.locator("tr[data-state=overdue]").count() == 1
    check(axe, page, errors)
    for notice in erasure.notices(world.accord, "reelix"):
        erasure.acknowledge(world.accord, "reelix", notice.id)
    page.goto(f"{base_url}/me/erasure/{done.request}")
    assert page.locator("tr[data-state=acknowledged]").count() == 1
    check(axe, page, errors)
