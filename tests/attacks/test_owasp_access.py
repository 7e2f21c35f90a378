"""OWASP API Security Top 10 (2023), the authorisation items: API1 broken object level
authorisation, API3 broken object property level authorisation, API5 broken function level
authorisation. Each attempt is refused, logged to the ledger, and releases nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from accord.scenario.population import CHIRP, REELIX
from api.privacy_helpers import form_of, sign_in
from api.world import World, app_token, bearer, delegated_token
from attacks.helpers import (
    PRIVATE,
    SOCIAL,
    WATCHED,
    entries_since,
    exchanges,
    friends_of,
    inbox,
    logged_refusal,
    refused,
    refused_and_logged,
    watch,
)

pytestmark = pytest.mark.integration

NOT_THIS_PERSON = "api:not-this-person"
NO_DELEGATION = "api:no-delegation"
NOT_HELD = "api:not-held"


class TestAPI1BrokenObjectLevelAuthorization:
    """A partner or a person reaches an object (a person, their grants, their consents, their
    erasure) that is not theirs by changing an id."""

    @pytest.mark.parametrize(
        ("clause", "body"),
        [
            # another person's friends, by the anchor
            ("friend-picker", friends_of("c0000202")),
            # another person's threads, the Inbox API's own shape
            ("message-sync", inbox({"kind": "threads_of", "anchor": "c0000202"})),
            # another person named among the people asked about
            ("message-sync", inbox({"kind": "people", "people": ["c0000201", "c0000202"]})),
            # acting for another person outright
            ("friend-picker", {**friends_of("c0000201"), "on_behalf_of": "c0000202"}),
        ],
    )
    def test_a_persons_token_reaches_no_one_else(
        self, world: World, client: httpx.Client, clause: str, body: dict[str, Any]
    ) -> None:
        token = delegated_token(
            client, world.reelix, world.reelix_secret, "c0000201", [SOCIAL, PRIVATE]
        )
        size = world.accord.ledger.head().size
        problem = refused(client.post(exchanges(clause), json=body, headers=bearer(token)), 403)
        assert problem["rules"] == [NOT_THIS_PERSON]
        logged_refusal(world, problem["receipt"], NOT_THIS_PERSON)
        refused_and_logged(world, size)

    def test_a_members_watch_token_reads_no_other_members_history(
        self, world: World, client: httpx.Client
    ) -> None:
        (member, other) = [
            str(m)
            for (m,) in world.sql(
                REELIX,
                "SELECT DISTINCT member_id FROM watch_events ORDER BY member_id LIMIT 2",
            )
        ]
        token = delegated_token(client, world.chirp, world.chirp_secret, member, [WATCHED])
        size = world.accord.ledger.head().size
        body = watch(subjects={"kind": "people", "people": [other]})
        r = client.post(exchanges("watch-activity"), json=body, headers=bearer(token))
        problem = refused(r, 403, NOT_THIS_PERSON)
        logged_refusal(world, problem["receipt"], NOT_THIS_PERSON)
        refused_and_logged(world, size)

    def test_a_partner_cannot_erase_a_person_the_other_party_holds(
        self, world: World, client: httpx.Client
    ) -> None:
        # Chirp's app asks to erase a Reelix member: Chirp holds no such person.
        token = app_token(client, world.chirp, world.chirp_secret)
        before = world.accord.consents(REELIX, "r0000203")
        size = world.accord.ledger.head().size
        r = client.post("/v1/people/r0000203/erasure", headers=bearer(token))
        problem = refused(r, 422, NOT_HELD)
        assert "holds no person" in problem["detail"]
        # The member is still there at Reelix, their consents untouched, no erasure logged:
        # the refusal is, like every other.
        assert world.accord.person(REELIX, "r0000203").id == "r0000203"
        assert world.accord.consents(REELIX, "r0000203") == before
        logged_refusal(world, problem["receipt"], NOT_HELD)
        (entry,) = refused_and_logged(world, size)
        assert entry["recipient"] == CHIRP
        assert entry["client"] == world.chirp.client_id
        assert "r0000203" not in entry["reason"]

    def test_a_refused_erasure_says_nothing_of_who_another_party_holds(
        self, world: World, client: httpx.Client
    ) -> None:
        # Chirp asks to erase a member Reelix holds, then an id nobody holds: the answers and the
        # ledger's entries are the same but for the id Chirp sent itself.
        token = app_token(client, world.chirp, world.chirp_secret)
        answers, entries = [], []
        for person in ("r0000204", "r9999999"):
            size = world.accord.ledger.head().size
            problem = refused(
                client.post(f"/v1/people/{person}/erasure", headers=bearer(token)), 422, NOT_HELD
            )
            answers.append({k: v for k, v in problem.items() if k != "receipt"})
            (entry,) = entries_since(world, size)
            entries.append({k: v for k, v in entry.items() if k != "at"})
        held, nobody = answers
        assert held == {
            **nobody,
            "detail": nobody["detail"].replace("r9999999", "r0000204"),
            "instance": nobody["instance"].replace("r9999999", "r0000204"),
        }
        assert entries[0] == entries[1]
        assert entries[0]["people"] == 0

    @pytest.mark.parametrize("notice", ["1", "n-0000", "../../erasure-notices", "%2e%2e"])
    def test_a_notice_that_is_not_the_partners_cannot_be_acknowledged(
        self, world: World, client: httpx.Client, notice: str
    ) -> None:
        token = app_token(client, world.reelix, world.reelix_secret)
        r = client.post(f"/v1/erasure-notices/{notice}/acknowledgement", headers=bearer(token))
        assert r.status_code in {403, 404, 422}, r.text
        assert "Traceback" not in r.text

    def test_a_person_narrows_no_one_elses_consent_by_its_id(
        self, world: World, client: httpx.Client
    ) -> None:
        me, other = "r0000204", "r0000205"
        theirs = [c for c in world.accord.consents(REELIX, other) if c.withdrawn_at is None]
        assert theirs
        sign_in(client, REELIX, me)
        form = form_of(client.get("/me").text)
        for target in theirs:
            r = client.post(
                f"/me/consents/{target.id}/titles", data={"form": form, "title": "t0001"}
            )
            assert r.status_code == 404, r.text
        after = {c.id: c for c in world.accord.consents(REELIX, other)}
        assert all(not after[c.id].excluded_titles - c.excluded_titles for c in theirs)

    def test_revoking_through_one_persons_token_leaves_anothers_grant(
        self, world: World, client: httpx.Client
    ) -> None:
        mine = delegated_token(client, world.reelix, world.reelix_secret, "c0000206", [SOCIAL])
        client.cookies.clear()
        theirs = delegated_token(client, world.reelix, world.reelix_secret, "c0000207", [SOCIAL])
        r = client.delete(f"/v1/me/permissions/{SOCIAL}", headers=bearer(mine))
        assert r.status_code == 200, r.text
        assert r.json()["revoked"] == 1
        granted = client.get("/v1/me/permissions", headers=bearer(theirs)).json()
        assert [p["status"] for p in granted] == ["granted"]
        ok = client.post(
            exchanges("friend-picker"), json=friends_of("c0000207"), headers=bearer(theirs)
        )
        assert ok.status_code == 200, ok.text


MASS_ASSIGNMENT = {
    # the decision itself, as if a client could decide
    "decision": {"allowed": True, "reason": "", "rules": []},
    "allowed": True,
    # another party as the requester
    "requester": CHIRP,
    "party": CHIRP,
    # receipts or a ledger index, as if already logged
    "receipts": [],
    # a granularity the clause does not give
    "granularity": "record",
    # the scopes a token holds, or a review approved
    "scopes": ["user:functional.service"],
    "approved": True,
    # a consent or a person's id for whom nothing was authorized
    "consent": "any",
    "person": "c0000002",
}


class TestAPI3BrokenObjectPropertyLevelAuthorization:
    """A client sets a property it may not (mass assignment), or reads one the clause does not
    release (excessive data exposure)."""

    @pytest.mark.parametrize("field", sorted(MASS_ASSIGNMENT))
    def test_a_property_the_client_may_not_set_is_refused(
        self, world: World, client: httpx.Client, field: str
    ) -> None:
        token = app_token(client, world.chirp, world.chirp_secret)
        body = watch(subjects={"kind": "all"}, **{field: MASS_ASSIGNMENT[field]})
        size = world.accord.ledger.head().size
        r = client.post(exchanges("watch-activity"), json=body, headers=bearer(token))
        problem = refused(r, 422)
        assert field in problem["detail"] or field in str(problem.get("errors", ""))
        # Refused before it reached the door: nothing decided, nothing released.
        assert world.accord.ledger.head().size == size

    @pytest.mark.parametrize(
        ("clause", "body", "field"),
        [
            # the friend's email is in the collection, not in the clause
            ("friend-picker", {**friends_of("c0000208"), "fields": ["email"]}, "email"),
            # a message's sender, which message sync does not release
            (
                "message-sync",
                {**inbox({"kind": "threads_of", "anchor": "c0000208"}), "fields": ["sender_id"]},
                "sender_id",
            ),
            # how long a member watched, which watch activity does not release
            (
                "watch-activity",
                watch(subjects={"kind": "people", "people": ["c0000208"]}),
                None,
            ),
        ],
    )
    def test_a_field_the_clause_does_not_release_is_not_released(
        self,
        world: World,
        client: httpx.Client,
        clause: str,
        body: dict[str, Any],
        field: str | None,
    ) -> None:
        token = delegated_token(
            client, world.reelix, world.reelix_secret, "c0000208", [SOCIAL, PRIVATE]
        )
        size = world.accord.ledger.head().size
        r = client.post(exchanges(clause), json=body, headers=bearer(token))
        assert r.status_code in {403, 422}, r.text
        assert "Traceback" not in r.text
        assert "rows" not in r.json()
        written = refused_and_logged_or_none(world, size)
        if field is not None:
            assert all(field not in str(e.get("fields", [])) for e in written)

    @pytest.mark.parametrize(
        "where",
        [
            {"email": "c0000002@chirp.example"},  # a condition on a field not released
            {"friendships.email": "x"},
            {"person_id": "c0000209", "email": "x"},
        ],
    )
    def test_a_condition_on_a_field_not_released_probes_nothing(
        self, world: World, client: httpx.Client, where: dict[str, str]
    ) -> None:
        token = delegated_token(client, world.reelix, world.reelix_secret, "c0000209", [SOCIAL])
        body = {**friends_of("c0000209"), "where": where}
        size = world.accord.ledger.head().size
        r = client.post(exchanges("friend-picker"), json=body, headers=bearer(token))
        assert r.status_code in {403, 422}, r.text
        refused(r, r.status_code)
        refused_and_logged(world, size)


def refused_and_logged_or_none(world: World, size: int) -> list[dict[str, Any]]:
    """What an attempt appended: nothing (refused before the door) or refusals only."""
    if world.accord.ledger.head().size == size:
        return []
    return refused_and_logged(world, size)


class TestAPI5BrokenFunctionLevelAuthorization:
    """A caller reaches a function meant for another kind of caller: a person's token at the
    partner's own functions, an app at another party's, anyone at the operator's."""

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            # a person's token erasing a person (the party's own function)
            ("POST", "/v1/people/c0000210/erasure", None),
            # a person's token reading the party's erasure notices
            ("GET", "/v1/erasure-notices", None),
            # a person's token acknowledging a notice
            ("POST", "/v1/erasure-notices/1/acknowledgement", None),
            # a person's token asking for ads (the platform's own ad server)
            ("POST", "/v1/ads/request", {"person": "c0000210", "party": CHIRP}),
            # a person's token reporting clicks (and charging advertisers)
            ("POST", "/v1/ads/click", {"party": CHIRP, "request_id": "r", "slot": 0}),
        ],
    )
    def test_a_persons_token_reaches_no_partner_function(
        self,
        world: World,
        client: httpx.Client,
        method: str,
        path: str,
        body: dict[str, Any] | None,
    ) -> None:
        token = delegated_token(client, world.chirp, world.chirp_secret, "r0000210", [WATCHED])
        r = client.request(method, path, json=body, headers=bearer(token))
        problem = refused(r, 403, NO_DELEGATION)
        logged_refusal(world, problem["receipt"], NO_DELEGATION)
        assert world.accord.person(CHIRP, "c0000210").id == "c0000210"

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            # Reelix's app running Chirp's ad auction for a Chirp person
            ("/v1/ads/request", {"person": "c0000211", "party": CHIRP}),
            # Reelix's app reporting clicks on Chirp's ads (charging Chirp's advertisers)
            ("/v1/ads/click", {"party": CHIRP, "request_id": "r", "slot": 0}),
        ],
    )
    def test_a_partner_reaches_no_other_partys_ad_server(
        self, world: World, client: httpx.Client, path: str, body: dict[str, Any]
    ) -> None:
        token = app_token(client, world.reelix, world.reelix_secret)
        problem = refused(client.post(path, json=body, headers=bearer(token)), 403)
        logged_refusal(world, problem["receipt"], problem["rules"][0])

    def test_a_partner_erases_no_one_at_the_other_party(
        self, world: World, client: httpx.Client
    ) -> None:
        token = app_token(client, world.reelix, world.reelix_secret)
        before = world.accord.consents(CHIRP, "c0000212")
        size = world.accord.ledger.head().size
        r = client.post("/v1/people/c0000212/erasure", headers=bearer(token))
        problem = refused(r, 422, NOT_HELD)
        assert "holds no person" in problem["detail"]
        assert world.accord.person(CHIRP, "c0000212").id == "c0000212"
        assert world.accord.consents(CHIRP, "c0000212") == before
        logged_refusal(world, problem["receipt"], NOT_HELD)
        assert not {e["kind"] for e in entries_since(world, size)} & {"erasure", "release"}

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/v1/me/permissions"),
            ("DELETE", "/v1/me/permissions"),
            ("DELETE", f"/v1/me/permissions/{SOCIAL}"),
        ],
    )
    def test_an_apps_own_token_reaches_no_persons_permissions(
        self, world: World, client: httpx.Client, method: str, path: str
    ) -> None:
        token = app_token(client, world.reelix, world.reelix_secret)
        problem = refused(client.request(method, path, headers=bearer(token)), 403, NO_DELEGATION)
        logged_refusal(world, problem["receipt"], NO_DELEGATION)

    @pytest.mark.parametrize("party", [CHIRP, REELIX, ""])
    def test_the_partners_console_needs_the_partners_own_sign_in(
        self, client: httpx.Client, party: str
    ) -> None:
        # A person signed in at the privacy centre is not a partner.
        sign_in(client, REELIX, "r0000213")
        r = client.get("/partner", params={"party": party} if party else None)
        assert r.status_code == 303, r.text
        assert r.headers["location"].startswith("/partner/login")

    @pytest.mark.parametrize("path", ["/audit", "/audit/flows", "/audit/ledger"])
    def test_the_public_auditors_console_shows_no_one_signed_in(
        self, client: httpx.Client, path: str
    ) -> None:
        # The auditor's console is public by design: it must then name no person, not even
        # the one whose sign-in cookie the browser sends.
        sign_in(client, REELIX, "r0000213")
        r = client.get(path)
        assert r.status_code == 200
        assert "r0000213" not in r.text
        assert "Sign out" not in r.text

    @pytest.mark.parametrize(
        ("override", "person"), [("DELETE", "c0000214"), ("PUT", "c0000215"), ("PATCH", "c0000216")]
    )
    def test_a_method_override_header_changes_nothing(
        self, world: World, client: httpx.Client, override: str, person: str
    ) -> None:
        token = delegated_token(client, world.reelix, world.reelix_secret, person, [SOCIAL])
        r = client.get(
            "/v1/me/permissions",
            headers={**bearer(token), "X-HTTP-Method-Override": override},
        )
        assert r.status_code == 200
        assert [p["status"] for p in r.json()] == ["granted"]
