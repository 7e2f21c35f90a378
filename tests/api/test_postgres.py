"""The partner API with the Accord store on PostgreSQL: a person's delegation, used and revoked."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from accord.client import AccordClient, ApiProblem
from accord.ledger.verify_proof import check as verify_bundle
from accord.scenario.population import REELIX
from api.privacy_helpers import entries_about, form_of, shown_entries
from api.test_privacy_centre import WATCHED, fresh_watchers, watched
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


def test_the_privacy_centre_on_postgresql(tmp_path: Path) -> None:
    """A member's VPPA consent, withdrawn for one title and then whole in their privacy centre,
    their entries and export, with the store on PostgreSQL."""
    with (
        fresh_postgres_database() as url,
        build_world(tmp_path, database_url=url) as world,
        serving(world.app) as base,
        httpx.Client(base_url=base) as http,
    ):
        member = fresh_watchers(world)[0]
        delegated_token(http, world.chirp, world.chirp_secret, member, [WATCHED])
        (vppa,) = [c for c in world.accord.consents(REELIX, member) if c.id.startswith("oauth-")]
        page = http.get("/me")
        assert vppa.id in page.text
        title = watched(world, member)[0][0]
        http.post(
            f"/me/consents/{vppa.id}/titles", data={"form": form_of(page.text), "title": title}
        )
        live = [c for c in world.accord.consents(REELIX, member) if c.withdrawn_at is None]
        assert [c.excluded_titles for c in live] == [frozenset({title})]
        page = http.get("/me")
        http.post(f"/me/consents/{live[0].id}/withdraw", data={"form": form_of(page.text)})
        assert all(c.withdrawn_at for c in world.accord.consents(REELIX, member))
        # Pages only read: the server's checkpointer (or a scheduled `accord ledger checkpoint`)
        # signs the checkpoint that covers the entries just written.
        world.accord.ledger.checkpoint()
        releases = http.get("/me/releases").text
        assert shown_entries(releases) == entries_about(world.accord, REELIX, member)
        export = http.get("/me/export.json").json()
        assert {e["index"] for e in export["ledger"]["entries"]} == shown_entries(releases)
        assert verify_bundle(export["ledger"]["proof"]) == []
