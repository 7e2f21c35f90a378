"""Schemathesis against the API's own OpenAPI document: no 5xx, every response as documented.

Requests carry a live token of an app acting for itself and of a person, so generated bodies
reach past authentication into the checks and the gateway.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.world import World, app_token, bearer, delegated_token

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def tokens(world: World, base_url: str) -> list[str]:
    with httpx.Client(base_url=base_url) as http:
        return [
            app_token(http, world.chirp, world.chirp_secret),
            delegated_token(
                http,
                world.reelix,
                world.reelix_secret,
                "c0000050",
                ["user.social:functional.service", "user.content.private:functional.service"],
            ),
        ]


def test_the_api_keeps_to_its_schema(base_url: str, tokens: list[str]) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            for token in tokens:
                case.call_and_validate(headers=bearer(token), checks=CHECKS)

        check()
