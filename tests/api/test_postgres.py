"""The partner API with the Accord store on PostgreSQL: a person's delegation, used and revoked."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from accord.client import AccordClient, ApiProblem
from api.world import build_world, delegated_token, serving
from databases import fresh_postgres_database

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

SOCIAL = "user.social:functional.service"


def test_a_delegation_on_postgresql(tmp_path: Path) -> None:
    with (
        fresh_postgres_database() as url,
        build_world(tmp_path, database_url=url) as world,
        serving(world.app) as base,
        httpx.Client(base_url=base) as http,
    ):
        person = "c0000003"
        token = delegated_token(http, world.reelix, world.reelix_secret, person, [SOCIAL])
        with AccordClient(base, token) as api:
            assert api.friends(person)
            assert api.revoke(SOCIAL) == 1
            with pytest.raises(ApiProblem) as refused:
                api.friends(person)
        assert refused.value.status == 403
        assert refused.value.rules == ["api:scope-not-granted"]
