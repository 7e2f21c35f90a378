"""The consent screens as a person reads them: one choice per purpose, plain words, the dates
that govern the sharing, wording that matches the buttons; and every app event in the ledger."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from accord.api.apps import months_later
from accord.api.scopes import Scope
from accord.api.wording import kept_for, word
from accord.scenario.population import CHIRP, REELIX
from api.world import REDIRECT, World, app_token, bearer, consent, pkce

pytestmark = pytest.mark.integration

SOCIAL = "user.social:functional.service"
PRIVATE = "user.content.private:functional.service"
WATCHED = "user.behavior.media_consumption:functional.service"
TARGETED = "user.behavior.media_consumption:marketing.advertising.third_party.targeted"
# A taxonomy key as fideslang spells them: two or more dotted lowercase parts.
TAXONOMY_KEY = re.compile(r"\b(user|marketing|functional|analytics|essential)\.[a-z_.]+")


class _Visible(HTMLParser):
    """The text a person sees: character data outside <head>, <script> and <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        if tag in {"head", "script", "style"}:
            self._hidden += 1
        if tag == "option":
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"head", "script", "style"}:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible(html: str) -> str:
    parser = _Visible()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def _hidden(html: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def first_page(client: httpx.Client, world: World, app: Any, person: str, scopes: list[str]) -> str:
    """Sign in as ``person`` and open ``app``'s consent screen for ``scopes``; its HTML."""
    _, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT,
        "scope": " ".join(scopes),
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    r = client.get("/oauth/authorize", params=params)
    if r.status_code == 303:
        nxt = parse_qs(urlsplit(r.headers["location"]).query)["next"][0]
        assert client.post("/login", data={"person": person, "next": nxt}).status_code == 303
        r = client.get("/oauth/authorize", params=params)
    assert r.status_code == 200, r.text
    return r.text


def test_ticking_only_the_feed_grants_no_advertising_consent(
    world: World, client: httpx.Client
) -> None:
    member = "r0000080"
    start = datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
    html = first_page(client, world, world.chirp, member, [WATCHED, TARGETED])
    r = client.post(
        "/oauth/authorize/consent", data={"pending": _hidden(html, "pending"), "action": "allow"}
    )
    assert r.status_code == 200
    vppa = r.text
    # Two purposes, two separate checkboxes, none ticked; no button agrees to both at once.
    boxes = re.findall(r'<input type="checkbox" name="scope" value="([^"]+)"( checked)?', vppa)
    assert sorted(v for v, _ in boxes) == sorted([WATCHED, TARGETED])
    assert not any(ticked for _, ticked in boxes)
    assert "I agree" not in visible(vppa)
    assert "Share only for what I ticked" in visible(vppa)
    r = client.post(
        "/oauth/authorize/vppa",
        data={
            "pending": _hidden(vppa, "pending"),
            "months": "12",
            "action": "allow",
            "scope": [WATCHED],
        },
    )
    assert r.status_code == 302, r.text
    given = [c for c in world.accord.consents(REELIX, member) if c.id.startswith("oauth-")]
    assert [sorted(c.purposes) for c in given] == [["functional.service"]]
    assert world.apps.live_scopes(world.chirp.client_id, member) == {Scope.parse(WATCHED)}
    leaves = world.accord.ledger.leaves_about(f"{REELIX}/{member}")
    consents = [
        e for e in leaves if e["kind"] == "consent" and e["change"] == "given" and e["at"] >= start
    ]
    assert not any(e["purpose"].startswith("marketing") for e in consents)
    assert any(e["purpose"] == "functional.service" for e in consents)


def not_opted_out(world: World, first: int) -> str:
    """The first Reelix member from ``first`` on with no opt-out of sale and sharing (the
    scenario opts some people out): advertising can be offered to them."""
    return next(
        f"r{n:07d}"
        for n in range(first, first + 100)
        if not world.accord.standing(REELIX, f"r{n:07d}").opted_out
    )


def test_ticking_both_purposes_records_two_separate_consents(
    world: World, client: httpx.Client
) -> None:
    member = not_opted_out(world, 300)
    consent(client, world.chirp, member, [WATCHED, TARGETED], months=3)
    given = [c for c in world.accord.consents(REELIX, member) if c.id.startswith("oauth-")]
    assert sorted(tuple(c.purposes) for c in given) == [
        ("functional.service",),
        ("marketing.advertising.third_party.targeted",),
    ]


@pytest.mark.parametrize(
    ("app", "person", "case"),
    [
        # Only watch activity asked: the first page has no checkbox, and says what comes next.
        ("chirp", "r0000082", ((WATCHED, TARGETED), "Continue to what you watch")),
        # An app not yet reviewed, for someone not a test person: nothing can be allowed.
        ("unreviewed", "c0000083", ((SOCIAL,), "There is nothing you can allow")),
    ],
)
def test_a_page_with_no_checkbox_never_speaks_of_ticking(
    world: World, client: httpx.Client, app: str, person: str, case: tuple[Any, str]
) -> None:
    scopes, expect = case
    html = first_page(client, world, getattr(world, app), person, list(scopes))
    assert 'type="checkbox"' not in html
    text = visible(html)
    assert "ticked" not in text.lower()
    assert "tick only" not in text.lower()
    assert expect in text


def test_a_page_with_checkboxes_says_the_buttons_do_what_they_say(
    world: World, client: httpx.Client
) -> None:
    text = visible(first_page(client, world, world.reelix, "c0000084", [SOCIAL, PRIVATE]))
    assert "Allow what I ticked" in text
    assert "Allow nothing" in text


def test_my_apps_shows_the_consents_own_expiry(world: World, client: httpx.Client) -> None:
    member = "r0000085"
    consent(client, world.chirp, member, [WATCHED], months=12)
    (given,) = [c for c in world.accord.consents(REELIX, member) if c.id.startswith("oauth-")]
    assert given.expires_at == months_later(given.given_at, 12)
    page = client.get("/me/apps", params={"party": REELIX})
    assert page.status_code == 200
    text = visible(page.text)
    until = given.expires_at.strftime("%-d %B %Y").lstrip("0")
    assert f"Your consent lasts until {until}" in text
    (grant,) = world.apps.grants(world.chirp.client_id, member)
    # The 90-day grant is not what the page calls the consent's end.
    assert f"Your consent lasts until {grant.expires_at.strftime('%-d %B %Y')}" not in text


@pytest.mark.parametrize(
    ("page", "label"),
    [
        ("consent", "Social Data"),  # Reelix asks a Chirp person
        ("vppa", "Media Consumption"),  # Chirp asks a Reelix member, on the VPPA page
        ("my_apps", "Third Party Targeted Advertising"),  # what the member allowed
    ],
)
def test_labels_are_plain_words_and_party_names(
    world: World, client: httpx.Client, page: str, label: str
) -> None:
    if page == "consent":
        html = first_page(client, world, world.reelix, "c0000086", [SOCIAL, PRIVATE])
    elif page == "my_apps":
        consent(client, world.chirp, "r0000086", [WATCHED, TARGETED])
        html = client.get("/me/apps", params={"party": REELIX}).text
    else:
        html = first_page(client, world, world.chirp, "r0000087", [WATCHED, TARGETED])
        html = client.post(
            "/oauth/authorize/consent",
            data={"pending": _hidden(html, "pending"), "action": "allow"},
        ).text
    text = visible(html)
    assert TAXONOMY_KEY.search(text) is None, TAXONOMY_KEY.search(text)
    assert label in text
    assert "Chirp" in text
    assert "Reelix" in text
    assert not re.search(r"\b(chirp|reelix)\b", text), "a party named by its id"
    assert "keeps it for at most" in text or "keeps none of it" in text


def test_the_vppa_page_links_to_per_title_withdrawal(world: World, client: httpx.Client) -> None:
    html = first_page(client, world, world.chirp, "r0000091", [WATCHED])
    vppa = client.post(
        "/oauth/authorize/consent", data={"pending": _hidden(html, "pending"), "action": "allow"}
    ).text
    assert f'href="/me?party={REELIX}#watching"' in vppa
    assert "for one title or for everything" in visible(vppa)


def test_an_opt_out_is_shown_and_reversible_on_my_apps(world: World, client: httpx.Client) -> None:
    member = "r0000088"
    assert not world.accord.standing(REELIX, member).opted_out
    consent(client, world.chirp, member, [WATCHED])
    page = client.get("/me/apps", params={"party": REELIX})
    form = _hidden(page.text, "form")
    assert 'id="opt-out"' in page.text
    r = client.post("/me/apps/opt-out", data={"form": form})
    assert r.status_code == 303
    assert world.accord.standing(REELIX, member).opted_out
    page = client.get(r.headers["location"])
    assert 'id="opt-in"' in page.text
    assert "You are opted out" in visible(page.text)
    r = client.post("/me/apps/opt-in", data={"form": form})
    assert r.status_code == 303
    assert not world.accord.standing(REELIX, member).opted_out
    # Someone else's form is refused.
    client.post("/login", data={"person": "r0000089", "next": f"/me/apps?party={REELIX}"})
    assert client.post("/me/apps/opt-out", data={"form": form}).status_code == 403
    assert not world.accord.standing(REELIX, "r0000089").opted_out


def test_app_events_are_in_the_ledger(world: World) -> None:
    before = world.accord.ledger.head().size
    app, _ = world.apps.register("Chirp lab", party=CHIRP, agreement="chirp-reelix")
    scope = sorted(world.apps.offered(app))[0]
    world.apps.review(app.client_id, scope, approved=False, reviewer="Ola", findings="no")
    world.apps.add_test_person(app.client_id, "r0000090")
    world.apps.add_test_person(app.client_id, "r0000090")  # twice changes nothing
    world.apps.revoke_app(app.client_id)
    added = world.accord.ledger.head().size - before
    leaves = [leaf.entry() for leaf in world.accord.ledger.recent(added)]
    mine = [e for e in reversed(leaves) if e["kind"] == "app"]
    assert [e["event"] for e in mine] == ["registered", "reviewed", "test_person", "revoked"]
    assert {e["client"] for e in mine} == {app.client_id}
    assert {e["party"] for e in mine} == {CHIRP}
    review = mine[1]
    assert (review["purpose"], review["categories"], review["approved"]) == (
        scope.purpose,
        [scope.category],
        False,
    )
    # The test person is there as a pseudonym only.
    assert len(mine[2]["subjects"]) == 1
    assert "r0000090" not in str(mine[2])
    assert world.accord.ledger.leaves_about(f"{REELIX}/r0000090")[-1]["event"] == "test_person"


@pytest.mark.parametrize("allowed", [True, False])
def test_api_decisions_name_the_client(world: World, client: httpx.Client, allowed: bool) -> None:
    token = app_token(client, world.chirp, world.chirp_secret)
    body = {
        "collection": "linked_accounts",
        "purpose": "essential.service.authentication",
        "categories": ["user.account.linked"],
        "subjects": {"kind": "people", "people": ["r0000001"]},
    }
    if not allowed:
        body["purpose"] = "functional.service"  # not what the clause is for: refused
    before = world.accord.ledger.head().size
    r = client.post(
        "/v1/agreements/chirp-reelix/clauses/account-link/exchanges",
        json=body,
        headers=bearer(token),
    )
    assert (r.status_code == 200) is allowed, r.text
    added = world.accord.ledger.head().size - before
    decisions = [
        leaf.entry()
        for leaf in world.accord.ledger.recent(added)
        if leaf.entry()["kind"] == "decision"
    ]
    assert decisions
    assert {d["client"] for d in decisions} == {world.chirp.client_id}
    assert {d["v"] for d in decisions} == {2}
    assert {d["allowed"] for d in decisions} == {allowed}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("days", "words"),
    [
        (0, "Reelix uses it as it arrives and keeps none of it."),  # a pass-through flow
        (1, "Reelix keeps it for at most 1 day."),
        (90, "Reelix keeps it for at most 90 days."),
        (730, "Reelix keeps it for at most 2 years (730 days)."),  # whole years read as years
    ],
)
def test_how_long_it_is_kept_reads_in_words(days: int, words: str) -> None:
    assert kept_for(days, "Reelix") == words


@pytest.mark.unit
def test_the_wording_comes_from_the_taxonomy_and_the_clause(world: World) -> None:
    agreement = world.accord.agreement("chirp-reelix").agreement
    w = word(Scope.parse(TARGETED), agreement, CHIRP, {CHIRP: "Chirp", REELIX: "Reelix"})
    assert w.title == (
        "Chirp may read your media consumption, for: Third Party Targeted Advertising"
    )
    assert w.what.startswith("Media Consumption: Content consumption history")
    assert w.why.startswith("Third Party Targeted Advertising: ")
    assert w.clause.startswith("Interest segments derived from watch history")
    assert w.kept == "Chirp keeps it for at most 90 days."
    assert w.advertising
    assert not word(Scope.parse(WATCHED), agreement, CHIRP, {}).advertising


def test_a_person_who_opted_out_earlier_is_not_offered_advertising(
    world: World, client: httpx.Client
) -> None:
    """An opt-out of sale and sharing made in the privacy settings, with no GPC signal on this
    visit, still bars the advertising permission: a form that offered it would ask the person to
    opt back in (Cal. Civ. Code 1798.135(c)(4))."""
    from accord.consent import OptOut, OptOutKind, SignalSource

    member = not_opted_out(world, 200)
    world.accord.opt_out(
        OptOut(member, REELIX, OptOutKind.SALE_SHARING, SignalSource.SETTINGS, datetime.now(UTC))
    )
    html = first_page(client, world, world.chirp, member, [WATCHED, TARGETED])
    shown = visible(html)
    assert "you opted out of the sale and sharing of your data" in shown
    assert f'value="{TARGETED}"' not in html  # no box to tick for it
    assert f'value="{WATCHED}"' in html or "watch" in shown.lower()
    # Ticking it anyway, by a crafted form, grants nothing for advertising.
    r = client.post(
        "/oauth/authorize/consent", data={"pending": _hidden(html, "pending"), "action": "allow"}
    )
    assert r.status_code == 200, r.text
    assert f'<input type="checkbox" name="scope" value="{TARGETED}"' not in r.text
    r = client.post(
        "/oauth/authorize/vppa",
        data={
            "pending": _hidden(r.text, "pending"),
            "months": "12",
            "action": "allow",
            "scope": [WATCHED, TARGETED],
        },
    )
    assert r.status_code == 302, r.text
    assert world.apps.live_scopes(world.chirp.client_id, member) == {Scope.parse(WATCHED)}
    given = [c for c in world.accord.consents(REELIX, member) if c.id.startswith("oauth-")]
    assert [sorted(c.purposes) for c in given] == [["functional.service"]]
