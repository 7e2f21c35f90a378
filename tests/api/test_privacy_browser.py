"""The privacy centre in a real browser (Debian's Chromium, driven by Playwright): the page's own
check of every proof with WebCrypto, what it says of a tampered proof or a log that rewrote its
past, the JavaScript's agreement with the Python tree, keyboard use, landmarks, labels and
contrast."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright
from sqlalchemy import update

import accord.ledger.verify_proof as standalone
from accord.api import privacy
from accord.ledger import merkle
from accord.ledger.entries import ReleaseEntry
from accord.scenario.population import REELIX
from accord.service import person_ref
from accord.store import tables as t
from api.privacy_helpers import entries_about
from api.test_browser import CHROMIUM_ARGS, watch_console
from api.test_privacy_centre import WATCHED, fresh_watchers, watch_activity_of
from api.world import World, app_token, bearer, delegated_token

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SWITCH = "Opt out of the sale and sharing of my data"


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
def watchers(world: World) -> list[str]:
    """The members the tests use, each one test's own, chosen before any test changes them."""
    return fresh_watchers(world)


def member_with_a_release(world: World, base_url: str, n: int, watchers: list[str]) -> str:
    """A US member who let Chirp's app see what they watch, and whose watch activity went."""
    member = watchers[n]
    with httpx.Client(base_url=base_url) as http:
        delegated_token(http, world.chirp, world.chirp_secret, member, [WATCHED])
    watch_activity_of(world, base_url, member)
    world.accord.ledger.checkpoint()
    return member


def sign_in(page: Page, base_url: str, person: str, party: str = REELIX) -> None:
    page.goto(f"{base_url}/me?party={party}")
    page.get_by_label(f"Your {party} id").fill(person)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/me?party={party}")


def checked(page: Page, path: str) -> str:
    """Open ``path`` and wait for the page's check of the proofs; its state."""
    page.goto(path)
    page.locator("#check-status[data-state]").wait_for()
    return str(page.locator("#check-status").get_attribute("data-state"))


def states(page: Page) -> dict[int, str]:
    """Each entry's proof state, by ledger index."""
    found: dict[int, str] = page.evaluate(
        """() => Object.fromEntries(Array.from(document.querySelectorAll('li.entry'),
              li => [li.dataset.index, li.querySelector('.proof-state').dataset.state]))"""
    )
    return {int(i): s for i, s in found.items()}


def test_the_page_verifies_every_entry_then_that_the_log_only_grew(
    world: World, base_url: str, context: BrowserContext, watchers: list[str]
) -> None:
    member = member_with_a_release(world, base_url, 0, watchers)
    page = context.new_page()
    errors = watch_console(page)
    sign_in(page, base_url, member)
    assert checked(page, f"{base_url}/me/releases") == "verified"
    oracle = entries_about(world.accord, REELIX, member)
    assert states(page) == dict.fromkeys(oracle, "verified")
    assert page.locator("li.entry .proof-state", has_text="Verified").count() == len(oracle)
    assert "signature checked" in page.locator("#check-status").inner_text()
    assert page.locator("#consistency[data-state]").get_attribute("data-state") == "first"
    first = world.accord.ledger.checkpoints()[-1][0]
    # The log grows (the person opts out, a checkpoint is signed); the next visit checks it.
    page.goto(f"{base_url}/me")
    page.get_by_role("switch", name=SWITCH).click()
    page.wait_for_url(f"{base_url}/me?done=opted-out*")
    world.accord.ledger.checkpoint()
    assert checked(page, f"{base_url}/me/releases") == "verified"
    consistency = page.locator("#consistency[data-state]")
    assert consistency.get_attribute("data-state") == "verified"
    assert f"extends the checkpoint this browser saw last ({first} entries)" in (
        consistency.inner_text()
    )
    assert errors == [] or all("404" in e for e in errors)


def test_a_log_that_rewrote_its_past_does_not_verify(
    world: World, base_url: str, context: BrowserContext, watchers: list[str]
) -> None:
    member = member_with_a_release(world, base_url, 1, watchers)
    page = context.new_page()
    sign_in(page, base_url, member)
    size = world.accord.ledger.checkpoints()[-1][0]
    # The browser remembers another root for an earlier size than the one the log has now.
    context.add_cookies(
        [{"name": "accord_seen", "value": f"{size - 3}:{'ab' * 32}", "url": f"{base_url}/me"}]
    )
    checked(page, f"{base_url}/me/releases")
    consistency = page.locator("#consistency[data-state]")
    assert consistency.get_attribute("data-state") == "failed"
    assert "Does not verify" in consistency.inner_text()
    # And a log smaller than the one the browser saw.
    context.add_cookies(
        [{"name": "accord_seen", "value": f"{size + 5}:{'ab' * 32}", "url": f"{base_url}/me"}]
    )
    checked(page, f"{base_url}/me/releases")
    assert "A log that shrinks has rewritten its past" in consistency.inner_text()


def test_since_compares_with_a_stored_checkpoint(
    world: World, base_url: str, context: BrowserContext, watchers: list[str]
) -> None:
    member = member_with_a_release(world, base_url, 2, watchers)
    earlier = world.accord.ledger.checkpoints()[0][0]
    page = context.new_page()
    sign_in(page, base_url, member)
    checked(page, f"{base_url}/me/releases?since={earlier}")
    consistency = page.locator("#consistency[data-state]")
    assert consistency.get_attribute("data-state") == "verified"
    assert f"the signed checkpoint of {earlier} entries you asked to compare with" in (
        consistency.inner_text()
    )


def test_a_browser_without_ed25519_is_told_so(
    world: World, base_url: str, context: BrowserContext, watchers: list[str]
) -> None:
    member = member_with_a_release(world, base_url, 8, watchers)
    # A browser whose WebCrypto has no Ed25519 (as older ones): importing such a key fails.
    context.add_init_script(
        """(() => {
          const original = crypto.subtle.importKey.bind(crypto.subtle);
          crypto.subtle.importKey = (format, key, algorithm, ...rest) =>
            (algorithm && algorithm.name === "Ed25519")
              ? Promise.reject(new DOMException("Unrecognized name", "NotSupportedError"))
              : original(format, key, algorithm, ...rest);
        })();"""
    )
    page = context.new_page()
    sign_in(page, base_url, member)
    assert checked(page, f"{base_url}/me/releases") == "verified"
    status = page.locator("#check-status").inner_text()
    assert "whose Ed25519 signature this browser cannot check" in status
    assert set(states(page).values()) == {"verified"}


def _flip(text: str) -> str:
    return ("0" if text[0] != "0" else "1") + text[1:]


def tampered(route: Route, change: Any) -> None:
    """Serve the real bundle with ``change`` made to it."""
    bundle = route.fetch().json()
    change(bundle)
    route.fulfill(status=200, content_type="application/json", body=json.dumps(bundle))


def test_a_tampered_proof_does_not_verify_in_the_page(
    world: World, base_url: str, context: BrowserContext, watchers: list[str]
) -> None:
    member = member_with_a_release(world, base_url, 3, watchers)
    page = context.new_page()
    sign_in(page, base_url, member)
    oracle = sorted(entries_about(world.accord, REELIX, member))
    victim = oracle[-1]

    def break_one_proof(bundle: dict[str, Any]) -> None:
        entry = next(e for e in bundle["entries"] if e["index"] == victim)
        entry["inclusion_proof"][0] = _flip(entry["inclusion_proof"][0])

    page.route("**/me/releases/proof.json", lambda r: tampered(r, break_one_proof))
    assert checked(page, f"{base_url}/me/releases") == "failed"
    got = states(page)
    assert got[victim] == "failed"
    assert all(got[i] == "verified" for i in oracle if i != victim)
    row = page.locator(f"#entry-{victim} .proof-state")
    assert row.inner_text().startswith("✗ Does not verify") or "Does not verify" in row.inner_text()
    assert "not included under the checkpoint" in row.inner_text()
    assert f"1 of {len(oracle)} entries do not verify" in page.locator("#check-status").inner_text()


@pytest.mark.parametrize(
    ("part", "said"),
    [
        ("signature", "the signature by"),  # the checkpoint's signature
        ("key", "not about you"),  # another person's key: the tags are not theirs
        ("leaf", "does not hash to its leaf hash"),  # a leaf changed after it was logged
    ],
)
def test_each_tampered_part_is_named(
    world: World,
    base_url: str,
    context: BrowserContext,
    *,
    watchers: list[str],
    part: str,
    said: str,
) -> None:
    member = member_with_a_release(world, base_url, 4, watchers)
    page = context.new_page()
    sign_in(page, base_url, member)

    def change(bundle: dict[str, Any]) -> None:
        if part == "signature":
            text, _, signature = bundle["checkpoint"].rpartition(" ")
            raw = bytearray(__import__("base64").b64decode(signature))
            raw[-1] ^= 1
            encoded = __import__("base64").b64encode(bytes(raw)).decode()
            bundle["checkpoint"] = f"{text} {encoded}\n"
        elif part == "key":
            bundle["person"]["key"] = "00" * 32
        else:
            entry = bundle["entries"][0]
            entry["leaf"] = entry["leaf"].replace('"v":', '"v" :', 1)

    page.route("**/me/releases/proof.json", lambda r: tampered(r, change))
    assert checked(page, f"{base_url}/me/releases") == "failed"
    shown = page.locator("main").inner_text()
    assert said in shown
    assert "verified" not in set(states(page).values()) or part == "leaf"


def test_a_release_about_many_people_is_proved_by_a_path_in_the_page(
    world: World, base_url: str, context: BrowserContext, watchers: list[str]
) -> None:
    """A bulk release's leaf commits to its subjects by a Merkle root: the page checks the
    person's path to it with WebCrypto, and a path changed by one bit does not verify."""
    member = member_with_a_release(world, base_url, 13, watchers)
    crowd = [person_ref(REELIX, member)] + [person_ref(REELIX, f"bulk-{i}") for i in range(99)]
    (receipt,) = world.accord.ledger.append(
        [
            ReleaseEntry(
                agreement="chirp-reelix",
                reason="a bulk release about a hundred members",
                provider=REELIX,
                recipient="chirp",
                about=tuple(crowd),
            )
        ]
    )
    world.accord.ledger.checkpoint()
    bulk = receipt.index
    assert "subjects_root" in world.accord.ledger.leaf(bulk).entry()
    page = context.new_page()
    sign_in(page, base_url, member)
    assert checked(page, f"{base_url}/me/releases") == "verified"
    assert states(page)[bulk] == "verified"

    def bend_the_path(bundle: dict[str, Any]) -> None:
        entry = next(e for e in bundle["entries"] if e["index"] == bulk)
        path = entry["subject_proof"]["path"]
        path[-1] = _flip(path[-1])

    page.route("**/me/releases/proof.json", lambda r: tampered(r, bend_the_path))
    assert checked(page, f"{base_url}/me/releases") == "failed"
    got = states(page)
    assert got[bulk] == "failed"
    assert all(state == "verified" for index, state in got.items() if index != bulk)
    assert "not about you" in page.locator(f"#entry-{bulk} .proof-state").inner_text()


def test_the_page_s_javascript_agrees_with_the_python_tree(
    world: World, base_url: str, context: BrowserContext, watchers: list[str]
) -> None:
    member = member_with_a_release(world, base_url, 5, watchers)
    page = context.new_page()
    sign_in(page, base_url, member)
    checked(page, f"{base_url}/me/releases")
    rng = random.Random(7)
    tree = merkle.MemoryTree(merkle.leaf_hash(bytes([n % 256, n // 256])) for n in range(300))
    sizes = list(range(1, 21)) + sorted(rng.sample(range(21, 301), 10))
    cases = []
    for n in sizes:
        root = tree.root(n).hex()
        for m in [*range(min(n, 20) + 1), *rng.sample(range(n + 1), min(n + 1, 3))]:
            proof = [h.hex() for h in tree.consistency_proof(m, n)]
            cases.append(["c", m, n, tree.root(m).hex(), root, proof, True])
            if proof:
                bad = [_flip(proof[0]), *proof[1:]]
                cases.append(["c", m, n, tree.root(m).hex(), root, bad, False])
        for i in sorted(rng.sample(range(n), min(n, 5))):
            proof = [h.hex() for h in tree.inclusion_proof(i, n)]
            leaf = tree.node((0, i)).hex()
            cases.append(["i", i, n, leaf, root, proof, True])
            cases.append(["i", i, n, _flip(leaf), root, proof, False])
    answers = page.evaluate(
        """async (cases) => {
            const L = window.AccordLedger;
            const out = [];
            for (const [kind, a, n, x, root, proof] of cases) {
              const p = proof.map(L.unhex);
              out.push(kind === "c"
                ? await L.verifyConsistency(a, n, L.unhex(x), L.unhex(root), p)
                : await L.verifyInclusion(L.unhex(x), a, n, p, L.unhex(root)));
            }
            return out;
        }""",
        cases,
    )
    assert answers == [c[-1] for c in cases]
    assert len(cases) > 500


def test_the_overview_works_from_the_keyboard(
    world: World, base_url: str, context: BrowserContext, watchers: list[str]
) -> None:
    member = member_with_a_release(world, base_url, 6, watchers)
    page = context.new_page()
    sign_in(page, base_url, member)
    switch = page.get_by_role("switch", name=SWITCH)
    assert switch.get_attribute("aria-checked") == "false"
    switch.focus()
    page.keyboard.press("Space")
    page.wait_for_url(f"{base_url}/me?done=opted-out*")
    assert page.get_by_role("switch", name=SWITCH).get_attribute("aria-checked") == "true"
    assert page.get_by_role("status").inner_text().startswith("You are opted out")
    assert world.accord.standing(REELIX, member).opted_out
    # The consent to share what they watch, withdrawn with the keyboard alone.
    stop = page.get_by_role("button", name="Stop sharing everything I watch")
    stop.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base_url}/me?done=withdrawn*")
    assert page.locator("#watching .consent.live").count() == 0
    assert watch_activity_of(world, base_url, member)["rows"] == []


PAGES = ("/me", "/me/releases", "/me/export")

CONTRAST = """() => {
  const lum = (rgb) => {
    const [r, g, b] = rgb.map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const worst = [];
  for (const el of document.querySelectorAll('main *, nav *, header *')) {
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.offsetParent === null) continue;
    const fg = parse(getComputedStyle(el).color).slice(0, 3);
    const [a, b] = [lum(fg), lum(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const text = el.textContent.trim().slice(0, 30);
    if (ratio < 4.5) worst.push(`${el.tagName}.${el.className}: ${ratio.toFixed(2)} "${text}"`);
  }
  return worst;
}"""


def test_every_page_has_landmarks_labels_and_contrast(
    world: World, base_url: str, context: BrowserContext, *, watchers: list[str], tmp_path: Path
) -> None:
    member = member_with_a_release(world, base_url, 7, watchers)
    page = context.new_page()
    errors = watch_console(page)
    sign_in(page, base_url, member)
    for path in PAGES:
        page.goto(f"{base_url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.get_by_role("banner").count() == 1
        assert page.get_by_role("main").count() == 1
        nav = page.get_by_role("navigation", name="Privacy centre")
        assert nav.get_by_role("link", name=page.title().split(" at ")[0]).count() <= 1
        assert nav.locator("[aria-current=page]").count() == 1
        assert page.get_by_role("heading", level=1).count() == 1
        for field in page.locator("input:not([type=hidden]), select, textarea").all():
            labelled = field.evaluate("e => e.labels.length > 0 || !!e.getAttribute('aria-label')")
            assert labelled, field.evaluate("e => e.outerHTML")
        assert page.evaluate(CONTRAST) == [], path
        page.screenshot(
            path=str(tmp_path / f"{path.strip('/').replace('/', '-')}.png"), full_page=True
        )
    assert [e for e in errors if "404" not in e] == []


def test_no_page_scrolls_sideways_on_a_phone(
    world: World, base_url: str, browser: Browser, watchers: list[str]
) -> None:
    member = member_with_a_release(world, base_url, 9, watchers)
    phone = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = phone.new_page()
        sign_in(page, base_url, member)
        for path in PAGES:
            page.goto(f"{base_url}{path}")
            if path == "/me/releases":
                page.locator("#check-status[data-state]").wait_for()
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
    finally:
        phone.close()


def test_the_page_shows_that_nothing_is_hidden(
    world: World, base_url: str, context: BrowserContext, watchers: list[str], tmp_path: Path
) -> None:
    member = member_with_a_release(world, base_url, 10, watchers)
    page = context.new_page()
    errors = watch_console(page)
    sign_in(page, base_url, member)
    assert checked(page, f"{base_url}/me/releases") == "verified"
    found = page.locator("#completeness[data-state]")
    assert found.get_attribute("data-state") == "verified"
    count = len(entries_about(world.accord, REELIX, member))
    assert f"commits to exactly {count} entr" in found.inner_text()
    page.screenshot(path=str(tmp_path / "releases-complete.png"), full_page=True)
    assert errors == [] or all("404" in e for e in errors)


def test_a_release_the_server_leaves_out_is_caught_by_the_completeness_check(
    world: World,
    base_url: str,
    context: BrowserContext,
    *,
    watchers: list[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The server lists every entry about the person but one, on the page and in the bundle
    alike: each proof shown still verifies, and only the people map says one is missing."""
    member = member_with_a_release(world, base_url, 11, watchers)
    watch_activity_of(world, base_url, member)  # a second release about them
    world.accord.ledger.checkpoint()
    oracle = sorted(entries_about(world.accord, REELIX, member))
    releases = [
        i for i in oracle if json.loads(world.accord.ledger.leaf(i).data)["kind"] == "release"
    ]
    hidden = releases[-1]
    real = privacy.person_entries

    def leaving_one_out(accord: Any, party: str, person: str) -> Any:
        bundle, leaves = real(accord, party, person)
        if person == member and bundle is not None:
            bundle["entries"] = [e for e in bundle["entries"] if e["index"] != hidden]
            leaves = [leaf for leaf in leaves if leaf.index != hidden]
        return bundle, leaves

    monkeypatch.setattr(privacy, "person_entries", leaving_one_out)
    page = context.new_page()
    sign_in(page, base_url, member)
    assert checked(page, f"{base_url}/me/releases") == "failed"
    assert page.locator(f"#entry-{hidden}").count() == 0
    got = states(page)
    assert got
    assert all(state == "verified" for state in got.values())  # each one shown holds
    found = page.locator("#completeness[data-state]")
    assert found.get_attribute("data-state") == "failed"
    assert (
        f"commits to {len(oracle)} entries about you, but {len(oracle) - 1} are listed"
        in found.inner_text()
    )
    assert "not the one the checkpoint" in page.locator("#check-status").inner_text()
    page.screenshot(path=str(tmp_path / "releases-one-left-out.png"), full_page=True)
    # The bundle the page offers fails the standalone verifier too.
    bundle = page.evaluate("() => fetch('/me/releases/proof.json').then(r => r.json())")
    assert any("not the whole list" in p for p in standalone.check(bundle))


def test_an_erasure_shows_each_recipient_s_acknowledgement(
    world: World, base_url: str, context: BrowserContext, watchers: list[str], tmp_path: Path
) -> None:
    """A member erases themselves from the overview; their request's page shows Chirp told, then
    overdue once its deadline has passed, told again with the reason, and acknowledged once
    Chirp's app acknowledges through the API."""
    member = member_with_a_release(world, base_url, 12, watchers)
    page = context.new_page()
    errors = watch_console(page)
    sign_in(page, base_url, member)
    page.goto(f"{base_url}/me")
    erase = page.get_by_role("button", name="Erase my data at reelix")
    erase.click()  # not without ticking that they understand: the browser holds the form back
    assert page.url == f"{base_url}/me"
    page.get_by_label("I understand that this cannot be undone").check()
    erase.click()
    page.wait_for_url(f"{base_url}/me/erasure/*")
    request = page.url.split("/me/erasure/")[1].split("?")[0]
    row = page.locator("#recipient-chirp")
    assert row.get_attribute("data-state") == "notified"
    assert "Told, waiting for its acknowledgement" in row.inner_text()
    assert "Your data is erased" in page.locator("#done").inner_text()
    page.screenshot(path=str(tmp_path / "erasure-notified.png"), full_page=True)
    # The person is signed out: their pages ask for a sign-in again.
    page.goto(f"{base_url}/me/releases?party={REELIX}")
    assert "/login" in page.url
    # A month passes without an answer: overdue, and the person can have Chirp told again.
    with world.accord.session() as s:
        s.execute(
            update(t.erasure_notices)
            .where(t.erasure_notices.c.request == request)
            .values(due_at=datetime.now(UTC) - timedelta(days=1))
        )
    page.goto(f"{base_url}/me/erasure/{request}")
    assert row.get_attribute("data-state") == "overdue"
    assert page.locator("#overdue-count").inner_text() == "1"
    page.screenshot(path=str(tmp_path / "erasure-overdue.png"), full_page=True)
    page.get_by_role("button", name="Tell the overdue company again").click()
    page.wait_for_url(f"{base_url}/me/erasure/{request}?done=retried")
    assert row.get_attribute("data-state") == "notified"
    assert "told 2 times" in row.inner_text()
    assert "had not acknowledged by" in row.locator(".problem").inner_text()
    # Chirp's own app reads the notice and acknowledges it through the API.
    with httpx.Client(base_url=base_url) as http:
        token = app_token(http, world.chirp, world.chirp_secret)
        notices = http.get("/v1/erasure-notices", headers=bearer(token)).json()
        (notice,) = [n for n in notices if n["person"] == member]
        assert notice["attempts"] == 2
        r = http.post(f"/v1/erasure-notices/{notice['id']}/acknowledgement", headers=bearer(token))
        assert r.status_code == 200, r.text
    page.goto(f"{base_url}/me/erasure/{request}")
    assert row.get_attribute("data-state") == "acknowledged"
    assert "Acknowledged: erased on its side" in row.inner_text()
    assert page.locator("#acknowledged-count").inner_text() == "1"
    assert page.get_by_role("button", name="Tell the overdue company again").count() == 0
    page.screenshot(path=str(tmp_path / "erasure-acknowledged.png"), full_page=True)
    # Anyone without the request's address finds nothing.
    assert page.goto(f"{base_url}/me/erasure/{'0' * 32}").status == 404  # type: ignore[union-attr]
    assert errors == [] or all("404" in e for e in errors)
