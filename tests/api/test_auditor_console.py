"""The auditor's console: the registry with every agreement and its history from the ledger, the
flow map counted from release entries (checked against counts made here from the raw leaves),
its filters, the refusals, the checkpoints, and that no page under /audit names a person."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from html import unescape
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright
from sqlalchemy import select

from accord.consent import Operation
from accord.gateway import Exchange, Gateway, Keyring, Refused
from accord.ledger.entries import DecisionEntry, ReleaseEntry
from accord.ledger.tables import leaves_table
from accord.requests import Request, Subjects
from accord.scenario.population import CHIRP, REELIX, generate
from api.test_browser import CHROMIUM_ARGS, watch_console
from api.world import PEOPLE, SEED, World, build_world, now, serving

pytestmark = pytest.mark.integration

PRIVATE = "user.content.private"
SOCIAL = "user.social"
SERVICE = "functional.service"
DAY1 = datetime(2026, 3, 2, 12, tzinfo=UTC)
DAY2 = datetime(2026, 3, 9, 12, tzinfo=UTC)
DAY3 = datetime(2026, 3, 16, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The API world, with releases on three days, a refused bulk inbox read through the gateway,
    a refusal of another agreement, and checkpoints signed along the way."""
    with build_world(tmp_path_factory.mktemp("audit")) as built:
        ledger = built.accord.ledger
        ledger.checkpoint()
        ledger.append(
            [
                ReleaseEntry(
                    agreement="chirp-reelix",
                    reason="friend picker for a member",
                    clause="friend-picker",
                    purpose=SERVICE,
                    categories=(SOCIAL,),
                    about=("c0000001", "c0000002", "c0000003"),
                    provider=CHIRP,
                    recipient=REELIX,
                    at=DAY1,
                ),
                ReleaseEntry(
                    agreement="chirp-reelix",
                    reason="message sync for a member",
                    clause="message-sync",
                    purpose=SERVICE,
                    categories=(PRIVATE, SOCIAL),
                    about=("c0000004",),
                    provider=CHIRP,
                    recipient=REELIX,
                    at=DAY2,
                ),
                ReleaseEntry(
                    agreement="chirp-reelix",
                    reason="watch activity for the feed",
                    clause="watch-activity",
                    purpose=SERVICE,
                    categories=("user.behavior.media_consumption",),
                    about=("r0000005", "r0000006"),
                    provider=REELIX,
                    recipient=CHIRP,
                    at=DAY3,
                ),
                DecisionEntry(
                    agreement="chirp-reelix-titan",
                    reason="agreement chirp-reelix-titan is draft and has never had a privacy "
                    "review; nothing flows under it until it is reviewed and published",
                    clause="all-friends",
                    purpose="marketing.advertising",
                    categories=(SOCIAL,),
                    about=("c0000007",),
                    allowed=False,
                    rules=("registry:not-in-force",),
                    recipient=REELIX,
                    at=DAY2,
                ),
            ]
        )
        ledger.checkpoint()
        keyring = Keyring()
        bulk = Request(
            requester=REELIX,
            agreement="chirp-reelix",
            clause="message-sync",
            operation=Operation.READ,
            purpose=SERVICE,
            categories=frozenset({PRIVATE}),
            at=datetime.now(UTC),
            subjects=Subjects(),
        )
        gateway = Gateway(built.accord, built.sources, keyring)
        with pytest.raises(Refused):
            gateway.exchange(Exchange(bulk, keyring.issue(REELIX), "messages"))
        ledger.checkpoint()
        yield built


@pytest.fixture(scope="module")
def base_url(world: World) -> Iterator[str]:
    with serving(world.app) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


def leaves(world: World) -> list[tuple[int, dict[str, Any]]]:
    """Every leaf of the ledger, decoded here with the json module (not the console's reader)."""
    c = leaves_table.c
    with world.accord.engine.connect() as conn:
        rows = conn.execute(select(c.idx, c.data).order_by(c.idx)).all()
    return [(int(i), json.loads(bytes(d))) for i, d in rows]


def expected_links(
    world: World, since: date | None = None, until: date | None = None, agreement: str = ""
) -> dict[tuple[str, str], str]:
    """(source, target) → "releases/people", counted from the raw leaves."""
    releases: Counter[tuple[str, str]] = Counter()
    people: Counter[tuple[str, str]] = Counter()
    for _, leaf in leaves(world):
        if leaf["kind"] != "release":
            continue
        day = datetime.fromisoformat(leaf["at"].replace("Z", "+00:00")).date()
        if (since and day < since) or (until and day > until):
            continue
        if agreement and leaf["agreement"] != agreement:
            continue
        purpose = leaf["purpose"] or "(no purpose recorded)"
        hops = [(f"{leaf['provider']} (holds)", c) for c in leaf["categories"]]
        hops += [(c, purpose) for c in leaf["categories"]]
        hops.append((purpose, f"{leaf['recipient']} (receives)"))
        for hop in hops:
            releases[hop] += 1
            people[hop] += leaf["people"]
    return {k: f"{releases[k]}/{people[k]}" for k in releases}


def shown_links(html: str) -> dict[tuple[str, str], str]:
    """(source, target) → "releases/people" as the flow map's table shows them."""
    table = html.split('id="flow-table"', 1)
    if len(table) < 2:
        return {}
    body = table[1].split("</table>", 1)[0]
    out: dict[tuple[str, str], str] = {}
    for row in re.findall(r"<tr data-stage[^>]*>(.*?)</tr>", body, re.S):
        cells = [unescape(c.strip()) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        out[cells[0], cells[1]] = f"{cells[3]}/{cells[4]}"
    return out


def test_the_registry_lists_every_agreement_with_its_history_in_ledger_order(
    world: World, client: httpx.Client
) -> None:
    html = client.get("/audit").text
    ids = [r.agreement.id for r in world.accord.agreements()]
    assert sorted(ids) == ["chirp-reelix", "chirp-reelix-titan"]
    for agreement_id in ids:
        assert f'id="agreement-{agreement_id}"' in html
    titan = html.split('id="agreement-chirp-reelix-titan"', 1)[1].split("</article>", 1)[0]
    assert "draft, not published" in titan
    assert "No privacy review yet." in titan
    active = html.split('id="agreement-chirp-reelix"', 1)[1].split("</article>", 1)[0]
    assert "active</span>" in active
    assert "Dana" in active  # the reviewer
    registered = world.accord.agreement("chirp-reelix").agreement
    for clause in registered.clauses:
        assert f"<code>{clause.id}</code>" in active
        assert f"{clause.retention_days} days" in active
    expected = [
        (i, leaf["to_status"])
        for i, leaf in leaves(world)
        if leaf["kind"] == "agreement" and leaf["agreement"] == "chirp-reelix"
    ]
    shown = [
        (int(i), to.replace(" ", "_"))
        for i, to in re.findall(
            r'<li data-index="(\d+)"><strong>[^<]*→ ([^<]*)</strong>', active, re.S
        )
    ]
    assert shown == expected
    # registered (a draft), reviewed and approved, made active: one ledger entry each
    assert [to for _, to in shown] == ["draft", "approved", "active"]
    titan_steps = re.findall(r'<li data-index="(\d+)">', titan)
    assert [int(i) for i in titan_steps] == [
        i
        for i, leaf in leaves(world)
        if leaf["kind"] == "agreement" and leaf["agreement"] == "chirp-reelix-titan"
    ]


def test_the_flow_map_counts_what_the_leaves_count(world: World, client: httpx.Client) -> None:
    html = client.get("/audit/flows").text
    expected = expected_links(world)
    assert expected  # the world has releases
    assert shown_links(html) == expected
    releases = [leaf for _, leaf in leaves(world) if leaf["kind"] == "release"]
    total = re.search(r'id="total-releases">(\d+)<', html)
    people = re.search(r'id="total-people">(\d+)<', html)
    assert total
    assert int(total.group(1)) == len(releases)
    assert people
    assert int(people.group(1)) == sum(leaf["people"] for leaf in releases)
    assert "<svg" in html
    assert 'class="band stage-0"' in html


@pytest.mark.parametrize(
    ("query", "expect"),
    [
        # one day: only the first release
        (
            {"since": "2026-03-02", "until": "2026-03-02"},
            (date(2026, 3, 2), date(2026, 3, 2), ""),
        ),
        # an open end: the second and third releases
        ({"since": "2026-03-03"}, (date(2026, 3, 3), None, "")),
        # up to a day, both included
        ({"until": "2026-03-09"}, (None, date(2026, 3, 9), "")),
        # an agreement with releases
        ({"agreement": "chirp-reelix"}, (None, None, "chirp-reelix")),
        # the draft: no release at all
        ({"agreement": "chirp-reelix-titan"}, (None, None, "chirp-reelix-titan")),
    ],
)
def test_the_date_and_agreement_filters(
    world: World,
    client: httpx.Client,
    query: dict[str, str],
    expect: tuple[date | None, date | None, str],
) -> None:
    html = client.get("/audit/flows", params=query).text
    expected = expected_links(world, *expect)
    assert shown_links(html) == expected
    if not expected:
        assert 'id="no-flows"' in html


def test_refusals_show_their_reasons_rules_and_counts(world: World, client: httpx.Client) -> None:
    refused = [
        leaf for _, leaf in leaves(world) if leaf["kind"] == "decision" and not leaf["allowed"]
    ]
    assert len(refused) >= 2
    html = client.get("/audit/flows").text
    table = unescape(html.split('id="refusal-table"', 1)[1].split("</table>", 1)[0])
    by_reason = Counter(leaf["reason"] for leaf in refused)
    for reason, n in by_reason.items():
        assert reason in table
        row = table.split(reason, 1)[1].split("</tr>", 1)[0]
        assert f'<td class="n">{n}</td>' in row
        for rule in {r for leaf in refused if leaf["reason"] == reason for r in leaf["rules"]}:
            assert f"<code>{rule}</code>" in row
    bulk = [leaf for leaf in refused if leaf["clause"] == "message-sync"]
    assert bulk, "the bulk inbox read is refused and logged"
    total = re.search(r'id="total-refused">(\d+)<', html)
    assert total
    assert int(total.group(1)) == len(refused)
    # Filtered to the draft agreement, only its refusal is left.
    draft = client.get("/audit/flows", params={"agreement": "chirp-reelix-titan"}).text
    assert "registry:not-in-force" in draft
    assert bulk[0]["reason"] not in unescape(draft)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"since": "2026-13-01"}, "is not a date"),  # no month 13
        ({"since": "2026-03-10", "until": "2026-03-01"}, "ends"),  # backwards
    ],
)
def test_a_bad_filter_is_refused_with_what_is_wrong(
    client: httpx.Client, query: dict[str, str], says: str
) -> None:
    r = client.get("/audit/flows", params=query, headers={"Accept": "text/html"})
    assert r.status_code == 400
    assert says in unescape(r.text)


def test_the_ledger_page_lists_checkpoints_newest_first(world: World, client: httpx.Client) -> None:
    ledger = world.accord.ledger
    html = client.get("/audit/ledger").text
    head = ledger.head()
    assert f'id="ledger-size">{head.size}<' in html
    assert head.root.hex() in html
    assert ledger.verifier is not None
    assert ledger.verifier.vkey in html
    sizes = [int(s) for s in re.findall(r'<tr data-size="(\d+)">', html)]
    stored = [size for size, _, _ in ledger.checkpoints()]
    assert sizes == sorted(stored, reverse=True)[:20]
    assert client.get("/audit/ledger", params={"page": "0"}).status_code == 400
    assert client.get("/audit/ledger", params={"page": "x"}).status_code == 400


def test_checkpoints_are_paginated(world: World, client: httpx.Client) -> None:
    ledger = world.accord.ledger
    for n in range(22):
        ledger.append([DecisionEntry(agreement=None, reason=f"filler {n}", allowed=True)])
        ledger.checkpoint()
    stored = sorted((size for size, _, _ in ledger.checkpoints()), reverse=True)
    first = client.get("/audit/ledger").text
    second = client.get("/audit/ledger", params={"page": "2"}).text
    assert [int(s) for s in re.findall(r'<tr data-size="(\d+)">', first)] == stored[:20]
    assert [int(s) for s in re.findall(r'<tr data-size="(\d+)">', second)] == stored[20:40]
    assert 'rel="next"' in first
    assert 'rel="prev"' in second


def test_no_page_under_audit_names_a_person(world: World, client: httpx.Client) -> None:
    population = generate(PEOPLE, seed=SEED, at=now())
    ids = {p.id for p in population.people}
    assert len(ids) == 2 * PEOPLE
    pseudonyms = {s for _, leaf in leaves(world) for s in leaf.get("subjects", [])}
    assert pseudonyms  # the releases above carry some
    ledger = world.accord.ledger
    sizes = [size for size, _, _ in ledger.checkpoints()]
    pages = [
        "/audit",
        "/audit/flows",
        "/audit/flows?agreement=chirp-reelix",
        "/audit/flows?since=2026-03-01&until=2026-03-31",
        "/audit/ledger",
        "/audit/ledger?page=2",
        f"/audit/ledger?old={sizes[0]}&new={sizes[-1]}",
    ]
    for page in pages:
        html = client.get(page).text
        words = set(re.findall(r"[0-9a-z]+", html.lower()))
        assert not ids & words, f"{page} names a person"
        assert not any(p in html for p in pseudonyms), f"{page} shows a pseudonym"


def test_the_start_page_links_the_console(client: httpx.Client) -> None:
    html = client.get("/", headers={"Accept": "text/html"}).text
    for path in ("/audit", "/audit/flows", "/audit/ledger"):
        assert f'href="{path}"' in html


# -- in the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


def consistency_check(page: Page, base_url: str, old: int, new: int) -> tuple[str, str]:
    """Ask the ledger page's form to check ``old`` → ``new``; the state and text it ends with."""
    page.goto(f"{base_url}/audit/ledger")
    page.fill("#old", str(old))
    page.fill("#new", str(new))
    page.click("#consistency-form button[type=submit]")
    page.locator("#consistency-result:not([data-state=pending])").wait_for()
    result = page.locator("#consistency-result")
    return str(result.get_attribute("data-state")), result.inner_text()


def tamper(field: str) -> Any:
    """A route handler that changes one field of the server's consistency answer."""

    def handle(route: Route) -> None:
        answer = route.fetch().json()
        if field == "proof":
            first = answer["proof"][0]
            answer["proof"][0] = ("0" if first[0] != "0" else "1") + first[1:]
        else:
            answer[field] = "00" * 32
        route.fulfill(json=answer)

    return handle


@pytest.mark.browser
def test_the_consistency_form_verifies_in_the_page(
    world: World, base_url: str, browser: Browser
) -> None:
    sizes = [size for size, _, _ in world.accord.ledger.checkpoints()]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = watch_console(page)
    state, text = consistency_check(page, base_url, sizes[0], sizes[-1])
    context.close()
    assert state == "verified", text
    assert f"the log of {sizes[-1]} entries (signed checkpoint, signature checked)" in text
    assert errors == []


@pytest.mark.browser
@pytest.mark.parametrize(
    ("field", "says"),
    [
        ("proof", "Does not verify: the proof does not show"),  # a hash of the proof changed
        ("new_root", "is not the one its checkpoint signs"),  # a root its checkpoint does not sign
    ],
)
def test_the_consistency_form_shows_a_tampered_proof_fails(
    world: World, base_url: str, browser: Browser, field: str, says: str
) -> None:
    sizes = [size for size, _, _ in world.accord.ledger.checkpoints()]
    old, new = sizes[1], sizes[-1]
    assert world.accord.ledger.consistency_proof(old, new).path  # a proof with hashes to change
    context = browser.new_context()
    page = context.new_page()
    page.route("**/v1/ledger/consistency?*", tamper(field))
    state, text = consistency_check(page, base_url, old, new)
    context.close()
    assert state == "failed"
    assert says in text


@pytest.mark.browser
def test_sizes_in_the_wrong_order_are_refused(
    world: World, base_url: str, browser: Browser
) -> None:
    size = world.accord.ledger.head().size
    context = browser.new_context()
    page = context.new_page()
    state, text = consistency_check(page, base_url, size, 1)
    context.close()
    assert state == "failed"
    assert "pick the smaller size first" in text
