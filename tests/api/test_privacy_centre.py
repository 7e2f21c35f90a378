"""The privacy centre over HTTP: a person's overview, where their data went, their export, and
the ledger's public checkpoint and consistency endpoints.

Each test signs in as its own people of the generated world; what a page shows is held to the
store, the gateway's releases and an oracle that reads the ledger's leaves itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from typer.testing import CliRunner

from accord import erasure
from accord.api import ApiSettings, create_app
from accord.client import AccordClient, ApiProblem
from accord.errors import InvalidInput, StoreError
from accord.ledger import merkle
from accord.ledger.cli import app as ledger_cli
from accord.ledger.entries import ConsentChangeEntry
from accord.ledger.signing import Checkpointer
from accord.ledger.verify_proof import check as verify_bundle
from accord.scenario.population import CHIRP, REELIX
from api.privacy_helpers import entries_about, form_of, shown_entries, sign_in
from api.world import World, delegated_token
from faults.helpers import commit_failing_after_the_release

pytestmark = pytest.mark.integration

WATCHED = "user.behavior.media_consumption:functional.service"
VERIFY_PROOF = Path(__file__).parents[2] / "src" / "accord" / "ledger" / "verify_proof.py"


def us_watchers(world: World) -> list[str]:
    """Reelix members in the US who watched something, in order."""
    return [
        str(m)
        for (m,) in world.sql(
            REELIX,
            "SELECT member_id FROM members WHERE jurisdiction LIKE 'US-%' AND member_id IN "
            "(SELECT member_id FROM watch_events) ORDER BY member_id",
        )
    ]


def fresh_watchers(world: World) -> list[str]:
    """US members who watched something, never opted out and gave no consent that covers what
    they watch: what they share is only what a test lets them."""
    return [
        m
        for m in us_watchers(world)
        if not world.accord.standing(REELIX, m).opt_outs
        and not any(
            "media_consumption" in k or k in {"user.behavior", "user"}
            for c in world.accord.consents(REELIX, m)
            for k in c.categories
        )
    ]


def watched(world: World, member: str) -> list[tuple[Any, ...]]:
    rows = world.sql(
        REELIX, "SELECT title_id, watched_at FROM watch_events WHERE member_id=?", member
    )
    return sorted(map(tuple, rows))


def watch_activity_of(world: World, base_url: str, member: str) -> dict[str, Any]:
    """Chirp's app reads the watch activity of ``member`` through the gateway."""
    with AccordClient.for_app(base_url, world.chirp.client_id, world.chirp_secret) as api:
        return api.watch_activity(person=member)


def consent_form_action(html: str, consent_id: str, what: str) -> str:
    action = f"/me/consents/{consent_id}/{what}"
    assert f'action="{action}"' in html, f"no {what} form for {consent_id}"
    return action


# -- a person's own data only ------------------------------------------------------------------


def test_a_person_sees_exactly_their_own_ledger_entries(
    world: World, client: httpx.Client, base_url: str
) -> None:
    members = us_watchers(world)[:2]
    for member in members:
        client.cookies.clear()
        delegated_token(client, world.chirp, world.chirp_secret, member, [WATCHED])
        watch_activity_of(world, base_url, member)
    world.accord.ledger.checkpoint()
    for member in members:
        client.cookies.clear()
        sign_in(client, REELIX, member)
        page = client.get("/me/releases")
        assert page.status_code == 200
        oracle = entries_about(world.accord, REELIX, member)
        assert len(oracle) >= 2  # the VPPA consent given, a release, and any imported
        assert shown_entries(page.text) == oracle
        assert page.headers["cache-control"] == "no-store"
    # Someone with no consent and no release has an empty page, not someone else's.
    (nobody,) = world.sql(
        REELIX,
        "SELECT member_id FROM members WHERE member_id NOT IN (SELECT member_id FROM "
        "watch_events) ORDER BY member_id DESC LIMIT 1",
    )[0:1]
    client.cookies.clear()
    sign_in(client, REELIX, str(nobody[0]))
    page = client.get("/me/releases")
    assert shown_entries(page.text) == entries_about(world.accord, REELIX, str(nobody[0]))


def test_changing_the_url_never_shows_someone_else(world: World, client: httpx.Client) -> None:
    me, other = "r0000101", "r0000102"
    theirs = world.accord.consents(REELIX, other)
    assert theirs
    world.accord.ledger.checkpoint()  # so that each has a proof bundle
    # Not signed in: no page shows anyone's data.
    assert "Which account do you use?" in client.get("/me").text
    for path in ("/me/releases", "/me/export", "/me/export.json", "/me/releases/proof.json"):
        r = client.get(path, params={"party": REELIX})
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login")
    sign_in(client, REELIX, me)
    # Another person's id in the URL changes nothing: the page is the signed-in person's.
    page = client.get("/me", params={"person": other, "id": other})
    assert f"<strong>{me}</strong>" in page.text
    assert other not in page.text
    bundle = client.get("/me/releases/proof.json", params={"person": f"{REELIX}/{other}"})
    assert bundle.json()["person"]["id"] == f"{REELIX}/{me}"
    export = client.get("/me/export.json", params={"person": other}).json()
    assert export["person"]["id"] == me
    assert not {c["id"] for c in export["consents"]} & {c.id for c in theirs}
    # Another party in the URL asks to sign in there.
    assert client.get("/me", params={"party": CHIRP}).status_code == 303
    # Withdrawing someone else's consent by its id is refused, and changes nothing.
    form = form_of(client.get("/me").text)
    target = next(c for c in theirs if c.withdrawn_at is None)
    r = client.post(f"/me/consents/{target.id}/withdraw", data={"form": form})
    assert r.status_code == 404
    assert (
        next(c for c in world.accord.consents(REELIX, other) if c.id == target.id).withdrawn_at
        is None
    )
    # A form of one person's page does not act for another who signs in after.
    sign_in(client, REELIX, other)
    r = client.post("/me/opt-out", data={"form": form})
    assert r.status_code == 403
    assert not world.accord.standing(REELIX, other).opted_out
    assert not world.accord.standing(REELIX, me).opted_out
    # A forged form value is refused.
    assert client.post("/me/opt-out", data={"form": "e30.forged"}).status_code == 400


# -- consents, VPPA and opt-outs ---------------------------------------------------------------


def test_withdrawing_the_vppa_consent_in_the_page_leaves_them_out_of_watch_activity(
    world: World, client: httpx.Client, base_url: str
) -> None:
    member = fresh_watchers(world)[0]
    delegated_token(client, world.chirp, world.chirp_secret, member, [WATCHED], months=6)
    before = watch_activity_of(world, base_url, member)
    assert sorted(map(tuple, before["rows"])) == watched(world, member)
    (vppa,) = [
        c
        for c in world.accord.consents(REELIX, member)
        if c.id.startswith("oauth-") and c.withdrawn_at is None
    ]
    sign_in(client, REELIX, member)
    page = client.get("/me")
    assert 'id="watching"' in page.text
    watching = page.text.split('id="watching"')[1].split('id="consents"')[0]
    assert vppa.id in watching  # the VPPA consent is shown on its own
    assert "Stop sharing everything I watch" in watching
    r = client.post(
        consent_form_action(page.text, vppa.id, "withdraw"), data={"form": form_of(page.text)}
    )
    assert r.status_code == 303
    assert "withdrawn" in client.get(r.headers["location"]).text
    after = watch_activity_of(world, base_url, member)
    assert after["rows"] == []
    assert after["people"] == 0
    assert world.apps.live_scopes(world.chirp.client_id, member) == frozenset()
    assert all(
        c.withdrawn_at is not None for c in world.accord.consents(REELIX, member) if c.id == vppa.id
    )


def test_a_title_withdrawn_in_the_page_stops_only_that_title(
    world: World, client: httpx.Client, base_url: str
) -> None:
    member = next(
        m for m in fresh_watchers(world)[1:] if len({t for t, _ in watched(world, m)}) >= 2
    )
    delegated_token(client, world.chirp, world.chirp_secret, member, [WATCHED])
    (vppa,) = [
        c
        for c in world.accord.consents(REELIX, member)
        if c.id.startswith("oauth-") and c.withdrawn_at is None
    ]
    title = watched(world, member)[0][0]
    sign_in(client, REELIX, member)
    page = client.get("/me")
    r = client.post(
        consent_form_action(page.text, vppa.id, "titles"),
        data={"form": form_of(page.text), "title": title},
    )
    assert r.status_code == 303
    rows = sorted(map(tuple, watch_activity_of(world, base_url, member)["rows"]))
    assert rows == [row for row in watched(world, member) if row[0] != title]
    assert rows
    now = [c for c in world.accord.consents(REELIX, member) if c.withdrawn_at is None]
    (narrowed,) = [c for c in now if c.excluded_titles]
    assert narrowed.excluded_titles == frozenset({title})
    assert narrowed.given_at == vppa.given_at  # it ends when the first would have
    assert narrowed.expires_at == vppa.expires_at
    # The app's grant stands behind the new record: taking the app back withdraws it.
    assert world.apps.live_scopes(world.chirp.client_id, member)
    world.apps.revoke(world.chirp.client_id, member)
    assert watch_activity_of(world, base_url, member)["rows"] == []
    # The ledger entry does not say which title: that would tell what they watched.
    (leaf,) = [
        e
        for e in world.accord.ledger.leaves_about(f"{REELIX}/{member}")
        if "one title" in e["reason"]
    ]
    assert title not in json.dumps(leaf)


def test_the_opt_out_toggles_and_reaches_the_ledger(world: World, client: httpx.Client) -> None:
    person = "r0000110"
    sign_in(client, REELIX, person)
    page = client.get("/me")
    assert 'aria-checked="false"' in page.text
    r = client.post("/me/opt-out", data={"form": form_of(page.text)})
    assert r.status_code == 303
    page = client.get(r.headers["location"])
    assert 'role="switch" id="sale-toggle" aria-checked="true"' in page.text
    assert world.accord.standing(REELIX, person).opted_out
    r = client.post("/me/opt-in", data={"form": form_of(page.text)})
    assert r.status_code == 303
    assert not world.accord.standing(REELIX, person).opted_out
    changes = [
        e["change"]
        for e in world.accord.ledger.leaves_about(f"{REELIX}/{person}")
        if e["kind"] == "consent"
    ]
    assert changes[-2:] == ["opted_out", "opted_in"]


def test_an_erasure_the_store_fails_is_logged_and_answered_503_without_the_store_s_words(
    world: World,
    client: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    person = "r0000111"
    sign_in(client, REELIX, person)
    page = client.get("/me")

    def failing(*_: object, **__: object) -> None:
        raise StoreError("could not reach db-primary.internal:5432 as accord_admin")

    monkeypatch.setattr(erasure, "erase", failing)
    with caplog.at_level(logging.ERROR, logger="accord.api"):
        r = client.post(
            "/me/erase",
            data={"form": form_of(page.text), "confirm": "yes"},
            headers={"accept": "text/html"},
        )
    assert r.status_code == 503
    assert "text/html" in r.headers["content-type"]
    assert "db-primary" not in r.text
    assert "accord_admin" not in r.text
    assert any("db-primary.internal" in m for m in caplog.messages), caplog.messages
    assert "press the button again" in r.text
    assert "/me#erase" in r.text
    assert "set-cookie" not in r.headers  # still signed in, to press the button again
    assert client.get("/me").status_code == 200


def test_an_erasure_of_nothing_held_is_said_as_it_is(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_in(client, REELIX, "r0000112")
    page = client.get("/me")

    def nothing(*_: object, **__: object) -> None:
        raise InvalidInput("party reelix holds no person 'r0000112'", where="erasure")

    monkeypatch.setattr(erasure, "erase", nothing)
    r = client.post("/me/erase", data={"form": form_of(page.text), "confirm": "yes"})
    assert r.status_code == 422
    assert "holds no person" in r.text


def test_a_gpc_signal_opts_out_until_the_person_opts_back_in(
    world: World, client: httpx.Client
) -> None:
    person = "r0000111"
    sign_in(client, REELIX, person)
    gpc = {"Sec-GPC": "1"}
    page = client.get("/me", headers=gpc)
    assert world.accord.standing(REELIX, person).opted_out
    assert 'id="gpc-note"' in page.text
    client.post("/me/opt-in", data={"form": form_of(page.text)}, headers=gpc)
    page = client.get("/me", headers=gpc)
    # Their own choice on this page stands against the signal (11 CCR 7025(c)(3)).
    assert not world.accord.standing(REELIX, person).opted_out
    assert "you opted back in on" in page.text


def test_withdrawing_every_consent_in_one_click(world: World, client: httpx.Client) -> None:
    person = next(
        p
        for p in (f"r{n:07d}" for n in range(120, 200))
        if sum(
            c.in_force_at(c.given_at) and c.withdrawn_at is None
            for c in world.accord.consents(REELIX, p)
        )
        >= 2
    )
    sign_in(client, REELIX, person)
    page = client.get("/me")
    assert 'id="withdraw-all"' in page.text
    r = client.post("/me/consents/withdraw-all", data={"form": form_of(page.text)})
    assert r.status_code == 303
    standing = world.accord.standing(REELIX, person)
    assert [s.state.value for s in standing.consents if s.state.value == "in force"] == []
    assert 'id="withdraw-all"' not in client.get("/me").text


# -- proofs ------------------------------------------------------------------------------------


def test_the_downloaded_bundle_is_what_the_cli_prints_and_passes_verify_proof(
    world: World, client: httpx.Client, tmp_path: Path
) -> None:
    member = next(
        p for p in (f"r{n:07d}" for n in range(130, 400)) if entries_about(world.accord, REELIX, p)
    )
    world.accord.ledger.checkpoint()
    sign_in(client, REELIX, member)
    r = client.get("/me/releases/proof.json")
    assert r.status_code == 200
    assert r.headers["content-disposition"].startswith("attachment")
    data_dir = Path(str(world.accord.engine.url.database)).parent
    printed = CliRunner().invoke(
        ledger_cli, ["prove", "--person", f"{REELIX}/{member}", "--data-dir", str(data_dir)]
    )
    assert printed.exit_code == 0, printed.output
    assert r.text == printed.stdout
    bundle = tmp_path / "proof.json"
    bundle.write_text(r.text)
    vkey = r.json()["vkey"]
    done = subprocess.run(  # noqa: S603 - this interpreter, the repository's own script
        [sys.executable, str(VERIFY_PROOF), str(bundle), "--vkey", vkey],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    assert f"{len(r.json()['entries'])} entr" in done.stdout


def test_a_page_view_signs_nothing_and_the_log_s_growth_is_signed_apart(
    world: World, client: httpx.Client
) -> None:
    """Pages only read: an entry no checkpoint covers yet is shown pending; the checkpointer
    (what the server runs as the log grows) signs one, once, and then the entry is proved."""
    person = "r0000131"
    world.accord.ledger.checkpoint()
    sign_in(client, REELIX, person)
    page = client.get("/me")
    client.post("/me/opt-out", data={"form": form_of(page.text)})
    newest = max(entries_about(world.accord, REELIX, person))
    signed = world.accord.ledger.checkpoints()
    assert signed[-1][0] <= newest
    releases = client.get("/me/releases").text
    client.get("/me/releases/proof.json")
    client.get("/me/export.json")
    assert world.accord.ledger.checkpoints() == signed
    assert "Pending" in releases.split('id="entries"')[1]
    checkpointer = Checkpointer(world.accord.ledger, 60)
    grown = checkpointer.tick()
    assert grown is not None
    assert grown.checkpoint.size > newest
    # Nothing more to sign until the log grows again.
    assert checkpointer.tick() is None
    assert "Pending" not in client.get("/me/releases").text.split('id="entries"')[1]


KEY = b"privacy-centre-test-key-32-bytes"


def test_the_server_signs_a_checkpoint_of_a_grown_log_when_it_starts(world: World) -> None:
    ledger = world.accord.ledger
    ledger.checkpoint()
    ledger.append([ConsentChangeEntry(agreement=None, reason="a test entry", change="given")])
    size = ledger.head().size
    before = ledger.checkpoints()
    assert before[-1][0] < size

    def checkpoints_while_serving(seconds: float) -> list[tuple[int, bytes, str]]:
        app = create_app(world.accord, {}, ApiSettings(checkpoint_seconds=seconds), key=KEY)

        async def serve() -> list[tuple[int, bytes, str]]:
            async with app.router.lifespan_context(app):
                return ledger.checkpoints()

        return asyncio.run(serve())

    # Told never to: a scheduled `accord ledger checkpoint` signs instead.
    assert checkpoints_while_serving(0) == before
    assert checkpoints_while_serving(3600)[-1][0] == size


# -- the export --------------------------------------------------------------------------------


def test_the_export_holds_everything_about_the_person_and_meets_its_schema(
    world: World, client: httpx.Client
) -> None:
    member = fresh_watchers(world)[-1]
    delegated_token(client, world.chirp, world.chirp_secret, member, [WATCHED])
    world.accord.ledger.checkpoint()
    sign_in(client, REELIX, member)
    r = client.get("/me/export.json")
    assert r.status_code == 200
    data = r.json()
    schema = client.get(data["schema"])
    assert schema.status_code == 200
    jsonschema_rs.validator_for(schema.json()).validate(data)
    assert data["person"] == {
        "id": member,
        "lives_in": world.accord.person(REELIX, member).jurisdiction,
        "ledger_id": f"{REELIX}/{member}",
    }
    assert {c["id"] for c in data["consents"]} == {
        c.id for c in world.accord.consents(REELIX, member)
    }
    assert [g["scope"] for g in data["grants"] if g["in_force"]] == [WATCHED]
    assert data["tokens"]
    assert all("hash" not in json.dumps(t) for t in data["tokens"])
    # The code was exchanged: kept to know a second use, it is no longer one to act on.
    assert data["authorization_codes"] == []
    assert {e["index"] for e in data["ledger"]["entries"]} == entries_about(
        world.accord, REELIX, member
    )
    assert verify_bundle(data["ledger"]["proof"]) == []
    page = client.get("/me/export")
    assert page.status_code == 200
    assert member in page.text
    assert 'href="/me/export.json"' in page.text


def test_the_schema_refuses_an_export_missing_a_part(world: World, client: httpx.Client) -> None:
    sign_in(client, REELIX, "r0000140")
    data = client.get("/me/export.json").json()
    schema = client.get(data["schema"]).json()
    del data["consents"]
    assert not jsonschema_rs.validator_for(schema).is_valid(data)


# -- the ledger's public endpoints -------------------------------------------------------------


def test_the_checkpoint_and_consistency_endpoints(world: World, client: httpx.Client) -> None:
    ledger = world.accord.ledger
    first = ledger.checkpoint().checkpoint.size
    sign_in(client, REELIX, "r0000150")
    client.post("/me/opt-out", data={"form": form_of(client.get("/me").text)})
    latest = ledger.checkpoint().checkpoint.size
    assert latest > first
    got = client.get("/v1/ledger/checkpoint").json()
    assert got["size"] == latest
    assert ledger.verifier is not None
    assert ledger.verifier.open(got["note"]).root.hex() == got["root"]
    assert client.get("/v1/ledger/checkpoint", params={"size": first}).json()["size"] == first
    for old, new in ((first, latest), (0, latest), (first, first), (1, first)):
        proof = client.get("/v1/ledger/consistency", params={"old": old, "new": new}).json()
        assert proof["verifies"] is True
        assert proof["old_root"] == ledger.root(old).hex()
        assert proof["new_root"] == ledger.root(new).hex()
        assert merkle.verify_consistency(
            old,
            new,
            bytes.fromhex(proof["old_root"]),
            bytes.fromhex(proof["new_root"]),
            [bytes.fromhex(h) for h in proof["proof"]],
        )
    default = client.get("/v1/ledger/consistency", params={"old": first}).json()
    assert default["new_size"] == latest
    assert default["new_checkpoint"] is not None


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"old": 5, "new": 3}, "OLD (5) is larger than NEW (3)"),  # backwards
        ({"old": 0, "new": 10**9}, "is beyond the ledger"),  # past the end
        ({"old": -1, "new": 3}, "old"),  # negative: the query's own validation names it
        ({"old": "two"}, "old"),  # not a number
    ],
)
def test_the_consistency_endpoint_refuses_bad_sizes(
    client: httpx.Client, params: dict[str, Any], said: str
) -> None:
    r = client.get("/v1/ledger/consistency", params=params)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert said in json.dumps(r.json())


def test_a_checkpoint_of_a_size_never_signed_is_not_found(
    world: World, client: httpx.Client
) -> None:
    world.accord.ledger.checkpoint()  # one size signed, not this one
    r = client.get("/v1/ledger/checkpoint", params={"size": 10**9})
    assert r.status_code == 404
    assert "no checkpoint of size" in r.json()["detail"]


def test_signing_out_leaves_nothing_to_see(client: httpx.Client) -> None:
    sign_in(client, REELIX, "r0000160")
    page = client.get("/me")
    assert "<strong>r0000160</strong>" in page.text
    r = client.post("/me/sign-out", data={"form": form_of(page.text)})
    assert r.status_code == 303
    assert "r0000160" not in client.get("/me").text
    assert client.get("/me/releases/proof.json", params={"party": REELIX}).status_code == 303


def test_a_release_never_received_is_shown_so_and_not_counted(
    world: World, client: httpx.Client, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails while committing a release of a person's watch activity, having stored
    it: Chirp is answered that nothing was released, and the person's page shows the release
    as never received, beside the ledger's note saying so, and counts it out."""
    member = us_watchers(world)[2]
    delegated_token(client, world.chirp, world.chirp_secret, member, [WATCHED])
    ledger = world.accord.ledger
    size = ledger.head().size
    commit_failing_after_the_release(
        monkeypatch, world.accord, stored=True, error=sqlite3.OperationalError("disk I/O error")
    )
    with pytest.raises(ApiProblem) as failed:
        watch_activity_of(world, base_url, member)
    assert failed.value.status == 503
    monkeypatch.undo()
    watch_activity_of(world, base_url, member)  # served; the note is logged first
    leaves = {i: ledger.leaf(i).entry() for i in range(size, ledger.head().size)}
    never = size + 1  # the first exchange's decision, then its release
    assert leaves[never]["kind"] == "release"
    (note,) = [i for i, e in leaves.items() if f"index {never} was never received" in e["reason"]]
    mine = entries_about(world.accord, REELIX, member)
    assert {never, note} <= mine
    client.cookies.clear()
    sign_in(client, REELIX, member)
    page = client.get("/me/releases").text
    entry = page.split(f'id="entry-{never}"')[1].split("</li>")[0]
    assert "<h3>Your media consumption never reached chirp</h3>" in entry
    assert "Never received: chirp was answered that nothing was released." in entry
    assert f'href="#entry-{note}">Entry #{note}</a> says so' in entry
    shown_note = page.split(f'id="entry-{note}"')[1].split("</li>")[0]
    assert f"<h3>A note on entry #{never}: chirp never received it</h3>" in shown_note
    # Counted: every release about them the ledger holds, but the one never received.
    releases = {i for i in mine if ledger.leaf(i).entry()["kind"] == "release"}
    count = re.search(r'<span class="num">(\d+)</span> <span>releases? of your data', page)
    assert count is not None
    assert int(count.group(1)) == len(releases - {never}) >= 1
    # The export says it too, of that release only, and still meets its schema.
    data = client.get("/me/export.json").json()
    marked = {e["index"]: e.get("never_received") for e in data["ledger"]["entries"]}
    assert marked[never] == note
    assert [i for i, by in marked.items() if by is not None] == [never]
    schema = client.get(data["schema"]).json()
    jsonschema_rs.validator_for(schema).validate(data)
