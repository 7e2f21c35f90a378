"""Schemathesis over the whole API, in stateful mode: Hypothesis drives sequences of steps (an
app registered and reviewed, its own token, a person's authorization through the consent
screens, requests to every operation of the OpenAPI document with bodies Schemathesis generates,
revocation of a token, of a grant, of an app) and checks after every step that nothing failed on
the server, that a revoked token reaches nothing, and that nothing was released to it.

The OAuth flows are pages and form posts outside the OpenAPI document, so the steps that need
them are the machine's own rules; each request to the API proper is a Schemathesis case.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from accord.api.apps import App
from accord.scenario.population import CHIRP, REELIX
from api.world import REDIRECT, World, app_token, bearer, delegated_token
from attacks.helpers import PRIVATE, SOCIAL, WATCHED, entries_since

pytestmark = pytest.mark.integration

PEOPLE = {REELIX: [f"c00003{n}" for n in range(80, 100)], CHIRP: ["r0000390", "r0000391"]}
"""People whose grants the machine may make: Reelix's apps act for Chirp people, and Chirp's for
Reelix members (each app's data holder is the other party)."""
SCOPES = {REELIX: [SOCIAL, PRIVATE], CHIRP: [WATCHED]}


@dataclass
class Token:
    value: str
    app: App
    person: str | None
    revoked: bool = False


@dataclass
class Registered:
    app: App
    secret: str
    revoked: bool = False
    tokens: list[Token] = field(default_factory=list)


def test_the_api_holds_through_any_sequence_of_steps(world: World, base_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    names = itertools.count()
    http = httpx.Client(base_url=base_url, timeout=30)

    class Steps(RuleBasedStateMachine):
        apps = Bundle("apps")
        tokens = Bundle("tokens")

        def __init__(self) -> None:
            super().__init__()
            self.all: list[Token] = []
            self.secrets: dict[str, str] = {}
            http.cookies.clear()

        @rule(target=apps, party=st.sampled_from([REELIX, CHIRP]))
        def register(self, party: str) -> Registered:
            app, secret = world.apps.register(
                f"App {next(names)}",
                party=party,
                agreement="chirp-reelix",
                redirect_uris=[REDIRECT],
            )
            assert secret
            self.secrets[app.client_id] = secret
            for scope in world.apps.offered(app):
                world.apps.review(
                    app.client_id, scope, approved=True, reviewer="Ola", findings="ok"
                )
            return Registered(app, secret)

        @rule(target=tokens, registered=apps)
        def its_own_token(self, registered: Registered) -> Token:
            if registered.revoked:
                r = http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(registered.app.client_id, registered.secret),
                )
                assert r.status_code in {400, 401}, r.text
                token = Token("revoked-app-never-got-one", registered.app, None, revoked=True)
            else:
                value = app_token(http, registered.app, registered.secret)
                token = Token(value, registered.app, None)
            registered.tokens.append(token)
            self.all.append(token)
            return token

        @rule(target=tokens, registered=apps, data=st.data())
        def authorize(self, registered: Registered, data: st.DataObject) -> Token:
            party = registered.app.party
            person = data.draw(st.sampled_from(PEOPLE[party]))
            if registered.revoked:
                token = Token("revoked-app-never-got-one", registered.app, person, revoked=True)
            else:
                http.cookies.clear()
                value = delegated_token(
                    http, registered.app, registered.secret, person, SCOPES[party]
                )
                token = Token(value, registered.app, person)
            registered.tokens.append(token)
            self.all.append(token)
            return token

        @rule(token=tokens, data=st.data())
        def call(self, token: Token, data: st.DataObject) -> None:
            operation = data.draw(st.sampled_from(operations))
            case = data.draw(operation.as_strategy())
            size = world.accord.ledger.head().size
            response = case.call(headers=bearer(token.value))
            assert response.status_code < 500, (case.path, response.text)
            if token.revoked and case.path.startswith("/v1/") and response.status_code != 404:
                needs_token = "security" in (operation.definition.raw or {}) or case.path not in {
                    "/v1/agreements",
                    "/v1/ledger/checkpoint",
                    "/v1/ledger/consistency",
                }
                if needs_token:
                    assert response.status_code in {401, 422}, (case.path, response.text)
                released = [e for e in entries_since(world, size) if e["kind"] == "release"]
                assert released == [], case.path

        @rule(token=consumes(tokens))
        def revoke_token(self, token: Token) -> None:
            r = http.post(
                "/oauth/revoke",
                data={"token": token.value},
                auth=(token.app.client_id, self.secrets[token.app.client_id]),
            )
            assert r.status_code in {200, 401}, r.text
            token.revoked = True
            r = http.get("/v1/app", headers=bearer(token.value))
            assert r.status_code == 401, r.text

        @rule(registered=apps)
        def revoke_app(self, registered: Registered) -> None:
            world.apps.revoke_app(registered.app.client_id)
            registered.revoked = True
            for token in registered.tokens:
                token.revoked = True

        @invariant()
        def every_revoked_token_is_refused(self) -> None:
            for token in self.all[-3:]:
                if token.revoked:
                    r = http.get("/v1/app", headers=bearer(token.value))
                    assert r.status_code == 401, r.text

    try:
        run_state_machine_as_test(
            Steps,
            settings=settings(
                max_examples=4,
                stateful_step_count=8,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        http.close()
