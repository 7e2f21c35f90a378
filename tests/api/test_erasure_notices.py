"""An erasure followed to the end (GDPR Art. 17 and 19): each recipient is told with a deadline
(a month, Art. 12(3)), acknowledges through the API as its own app, and the request's state per
recipient is what the person's page shows; a recipient past its deadline is overdue and told
again with the reason; every step is in the ledger, naming nobody."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from accord import erasure
from accord.api.settings import ApiSettings
from accord.errors import InvalidInput, NotFound
from accord.ledger.entries import ENTRY_KINDS
from accord.ledger.kinds import KINDS
from accord.store import tables as t
from api.test_erasure import consenting
from api.world import World, app_token, bearer

pytestmark = pytest.mark.integration


def _notice_entries(world: World, request: str) -> list[dict[str, object]]:
    """The ledger's erasure notice entries of a request, found by its tag alone."""
    tag = erasure.request_tag(request)
    found = []
    for leaf in world.accord.ledger.recent(200):
        entry = json.loads(leaf.data)
        if entry["kind"] == "erasure_notice" and entry["request"] == tag:
            found.append(entry)
    return sorted(found, key=lambda e: (str(e["at"]), int(str(e["attempt"]))))


def test_each_recipient_is_told_with_a_deadline_and_acknowledges(
    world: World, client: httpx.Client
) -> None:
    person = consenting(world, "chirp", "reelix")
    chirp = app_token(client, world.chirp, world.chirp_secret)
    reelix = app_token(client, world.reelix, world.reelix_secret)
    r = client.post(f"/v1/people/{person}/erasure", headers=bearer(chirp))
    assert r.status_code == 200, r.text
    request = r.json()["request"]
    assert isinstance(request, str)
    assert len(request) == 32
    (notice,) = [
        n
        for n in client.get("/v1/erasure-notices", headers=bearer(reelix)).json()
        if n["person"] == person
    ]
    erased = datetime.fromisoformat(notice["erased_at"])
    # One month to answer (Art. 12(3)), the API's default of 30 days.
    assert datetime.fromisoformat(notice["due_at"]) - erased == timedelta(days=30)
    assert notice["attempts"] == 1
    state = erasure.request_state(world.accord, request)
    assert [(s.recipient, s.state) for s in state.recipients] == [("reelix", "notified")]
    assert not state.done
    # Another party's app cannot acknowledge Reelix's notice; Reelix's own can.
    path = f"/v1/erasure-notices/{notice['id']}/acknowledgement"
    assert client.post(path, headers=bearer(chirp)).status_code == 404
    r = client.post(path, headers=bearer(reelix))
    assert r.status_code == 200, r.text
    state = erasure.request_state(world.accord, request)
    assert [(s.recipient, s.state) for s in state.recipients] == [("reelix", "acknowledged")]
    assert state.done
    assert state.recipients[0].acknowledged_at is not None
    # The notice no longer names the person, and no longer waits in Reelix's list.
    with world.accord.session() as s:
        kept = s.execute(
            select(t.erasure_notices.c.person).where(t.erasure_notices.c.id == notice["id"])
        ).scalar_one()
    assert kept is None
    assert all(
        n["id"] != notice["id"]
        for n in client.get("/v1/erasure-notices", headers=bearer(reelix)).json()
    )
    # In the ledger: told, then acknowledged, naming nobody.
    entries = _notice_entries(world, request)
    assert [e["event"] for e in entries] == ["notified", "acknowledged"]
    assert all(e["subjects"] == [] for e in entries)
    assert all(person not in json.dumps(e) for e in entries)
    assert all(e["recipient"] == "reelix" and e["provider"] == "chirp" for e in entries)


def test_a_recipient_past_its_deadline_is_overdue_then_told_again_with_the_reason(
    world: World, client: httpx.Client
) -> None:
    person = consenting(world, "chirp", "reelix")
    chirp = app_token(client, world.chirp, world.chirp_secret)
    request = client.post(f"/v1/people/{person}/erasure", headers=bearer(chirp)).json()["request"]
    (told,) = erasure.request_state(world.accord, request).recipients
    assert told.due_at is not None
    later = told.due_at + timedelta(days=1)
    (late,) = erasure.request_state(world.accord, request, at=later).recipients
    assert late.state == "overdue"
    # Before the deadline nobody is told again; after it, the overdue recipient is.
    assert (
        erasure.retry_overdue(world.accord, request=request, at=told.due_at - timedelta(days=1))
        == 0
    )
    assert erasure.retry_overdue(world.accord, request=request, at=later) == 1
    (again,) = erasure.request_state(world.accord, request, at=later).recipients
    assert again.state == "notified"
    assert again.attempts == 2
    assert again.due_at == later + erasure.RETRY_DEADLINE
    assert again.problem is not None
    assert "had not acknowledged by" in again.problem
    assert "attempt 2" in again.problem
    # The recipient sees the same: told twice, and why.
    reelix = app_token(client, world.reelix, world.reelix_secret)
    (notice,) = [
        n
        for n in client.get("/v1/erasure-notices", headers=bearer(reelix)).json()
        if n["person"] == person
    ]
    assert notice["attempts"] == 2
    assert notice["problem"] == again.problem
    assert [e["event"] for e in _notice_entries(world, request)] == ["notified", "told_again"]


def test_an_unknown_request_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        erasure.request_state(world.accord, "0" * 32)


def test_the_deadline_is_a_setting_within_the_law(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ApiSettings().erasure_deadline_days == 30
    monkeypatch.setenv("ACCORD_API_ERASURE_DEADLINE_DAYS", "10")
    assert ApiSettings().erasure_deadline_days == 10
    monkeypatch.setenv("ACCORD_API_ERASURE_DEADLINE_DAYS", "91")  # past Art. 12(3)'s extension
    with pytest.raises(ValueError, match="less than or equal to 90"):
        ApiSettings()


def test_the_notice_kind_is_listed() -> None:
    assert "erasure_notice" in KINDS
    assert "erasure_notice" in ENTRY_KINDS
    with pytest.raises(InvalidInput):
        ENTRY_KINDS["erasure_notice"](
            agreement=None,
            reason="x",
            about=("someone",),
            event="notified",
            request="r",
            provider="a",
            recipient="b",
        )
