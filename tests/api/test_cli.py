"""``accord serve`` (run as a process on a free port) and ``accord app`` (through Typer)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import httpx
import pytest
import typer
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from typer.testing import CliRunner

from accord import agreements as ag
from accord.api import PartnerApps
from accord.api.cli import SERVE_ENV, plan, prepare, serve, worker_app
from accord.api.cli import app as apps_cli
from accord.client import AccordClient
from accord.consent import Person
from accord.erasure import erase
from accord.errors import ConfigError, StoreError
from accord.scenario.generate import write_databases
from accord.scenario.population import generate
from accord.service import Accord
from api.world import REDIRECT, browse

pytestmark = pytest.mark.integration

SOCIAL = "user.social:functional.service"
EXAMPLE = (resources.files("accord") / "examples" / "chirp-reelix.yaml").read_text()
SERVE = """
import typer
from accord.api.cli import serve
app = typer.Typer()
app.command()(serve)
app()
"""


def store(folder: Path) -> None:
    with Accord.open(data_dir=folder) as accord:
        accord.register(EXAMPLE, source="chirp-reelix.yaml", by="legal")
        accord.review("chirp-reelix", reviewer="Dana", findings="none", approved=True)
        accord.move("chirp-reelix", ag.Status.ACTIVE, by="dpo")


def test_apps_are_registered_reviewed_and_revoked_from_the_command_line(tmp_path: Path) -> None:
    store(tmp_path)
    runner = CliRunner()
    d = ["--data-dir", str(tmp_path)]
    made = runner.invoke(
        apps_cli, ["register", "Chirp feed", "--party", "chirp", "--agreement", "chirp-reelix", *d]
    )
    assert made.exit_code == 0, made.output
    client_id = re.search(r"client_id: (\w+)", made.output)
    assert client_id is not None
    assert "client_secret: " in made.output
    cid = client_id.group(1)
    scope = "user.behavior:analytics.reporting.content_performance"
    reviewed = runner.invoke(
        apps_cli, ["review", cid, scope, "--reviewer", "Ola", "--findings", "ok", *d]
    )
    assert reviewed.exit_code == 0, reviewed.output
    with Accord.open(data_dir=tmp_path) as accord:
        accord.add_people([Person("r0000001", "reelix", "US-NY")])
    assert runner.invoke(apps_cli, ["test-person", cid, "r0000001", *d]).exit_code == 0
    assert runner.invoke(apps_cli, ["revoke", cid, *d]).exit_code == 0
    with Accord.open(data_dir=tmp_path) as accord:
        apps = PartnerApps(accord)
        assert [str(s) for s in apps.approved(cid)] == [scope]
        assert apps.test_people(cid) == {"r0000001"}
        revoked = apps.get(cid)
        assert revoked is not None
        assert revoked.revoked_at is not None
    wrong = runner.invoke(
        apps_cli, ["register", "X", "--party", "nobody", "--agreement", "chirp-reelix", *d]
    )
    assert wrong.exit_code == 2
    assert "not a party" in wrong.output


@pytest.mark.parametrize(
    ("person", "message"),
    [
        # an id Reelix never recorded (a typo): no request could ever be about them
        ("r0000404", "party reelix holds no person 'r0000404'"),
        # Chirp's own member: the Chirp app's test people are Reelix's, whose data it reads
        ("c0000001", "party reelix holds no person 'c0000001'"),
        # a member Reelix erased stays out of every record
        ("r0000002", "party reelix erased person 'r0000002'"),
    ],
)
def test_a_test_person_must_be_one_the_data_holder_has(
    tmp_path: Path, person: str, message: str
) -> None:
    store(tmp_path)
    d = ["--data-dir", str(tmp_path)]
    with Accord.open(data_dir=tmp_path) as accord:
        accord.add_people(
            [
                Person("r0000001", "reelix", "US-NY"),
                Person("r0000002", "reelix", "US-NY"),
                Person("c0000001", "chirp", "US-NY"),
            ]
        )
        erase(accord, "reelix", "r0000002")
        chirp_app, _ = PartnerApps(accord).register(
            "Chirp feed", party="chirp", agreement="chirp-reelix"
        )
    cid = chirp_app.client_id
    refused = CliRunner().invoke(apps_cli, ["test-person", cid, person, *d])
    assert refused.exit_code == 2, refused.output
    assert message in refused.output
    assert "Traceback" not in refused.output
    # Reelix's member is one; adding them twice keeps one row and says so again.
    for _ in range(2):
        added = CliRunner().invoke(apps_cli, ["test-person", cid, "r0000001", *d])
        assert added.exit_code == 0, added.output
    with Accord.open(data_dir=tmp_path) as accord:
        assert PartnerApps(accord).test_people(cid) == {"r0000001"}


def test_serve_plans_each_partys_database_and_declaration(tmp_path: Path) -> None:
    for party in ("chirp", "reelix"):
        (tmp_path / f"{party}.db").touch()
    layout = plan([], [], tmp_path, None, None)
    assert set(layout["sources"]) == {"chirp", "reelix"}
    assert layout["datasets"]["chirp"].endswith("chirp.yaml")
    with pytest.raises(ConfigError, match="PARTY=VALUE"):
        plan(["chirp"], [], None, None, None)
    with pytest.raises(ConfigError, match="no dataset declaration"):
        plan(["acme=sqlite:///x.db"], [], None, None, None)
    bad = CliRunner().invoke(_serve_app(), ["--source", "acme=sqlite:///x.db"])
    assert bad.exit_code == 1
    assert "no dataset declaration for acme" in bad.output
    unset = CliRunner().invoke(
        _serve_app(), ["--scenario", str(tmp_path)], env={"ACCORD_API_TOKEN_SECONDS": "86400"}
    )
    assert unset.exit_code == 2
    assert "ACCORD_API_TOKEN_SECONDS" in unset.output


def _serve_app() -> typer.Typer:
    t = typer.Typer()
    t.command()(serve)
    return t


def test_serve_runs_the_code_flow_for_authlibs_client(tmp_path: Path) -> None:
    """``accord serve`` with two workers, a real OAuth client, a person's browser, one flow."""
    at = datetime.now(UTC).replace(microsecond=0)
    written = write_databases(tmp_path / "scenario", people=150, seed=3, at=at, parallel=False)
    population = generate(150, seed=3, at=at)
    store(tmp_path / "store")
    with Accord.open(data_dir=tmp_path / "store") as accord:
        accord.import_records(population.people, population.consents, population.opt_outs)
        apps = PartnerApps(accord)
        mobile, _ = apps.register(
            "Reelix mobile",
            party="reelix",
            agreement="chirp-reelix",
            redirect_uris=[REDIRECT],
            public=True,
        )
        for scope in apps.offered(mobile):
            apps.review(mobile.client_id, scope, approved=True, reviewer="Ola", findings="ok")
    command = [
        sys.executable, "-c", SERVE, "--port", "0", "--workers", "2",
        "--data-dir", str(tmp_path / "store"), "--scenario", str(written.chirp.parent),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ACCORD_API_SECRET", None)
    with subprocess.Popen(  # noqa: S603 - our own interpreter and a fixed script
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    ) as process:
        try:
            url = _where(process)
            _check_serving(url)
            _code_flow(url, mobile.client_id)
        finally:
            process.terminate()
            process.wait(timeout=30)


def _where(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        found = re.search(r"running on (http://[\d.]+:\d+)", line)
        if found:
            return found.group(1)
    raise AssertionError("the server did not say where it listens")


def _check_serving(url: str) -> None:
    # Wait for both workers to answer.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    meta = httpx.get(f"{url}/.well-known/oauth-authorization-server").json()
    assert meta["token_endpoint"] == f"{url}/oauth/token"
    assert httpx.get(f"{url}/docs").status_code == 200


def _code_flow(url: str, client_id: str) -> None:
    person = "c0000005"
    oauth = OAuth2Session(
        client_id=client_id,
        token_endpoint_auth_method="none",  # noqa: S106 - a public client's method, no secret
        scope=SOCIAL,
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    authorize, state = oauth.create_authorization_url(
        f"{url}/oauth/authorize", code_verifier=verifier
    )
    # Several requests of one browser land on either worker: the forms they sign must agree.
    with httpx.Client(base_url=url) as browser:
        redirected = browse(browser, authorize, person, allow=[SOCIAL])
    token = oauth.fetch_token(
        f"{url}/oauth/token",
        authorization_response=redirected,
        code_verifier=verifier,
        state=state,
    )
    oauth.close()
    with AccordClient(url, token["access_token"]) as api:
        assert api.app()["person"] == person
        friends = api.friends(person)
    assert isinstance(friends, list)


def test_serve_refuses_a_scenario_folder_without_the_parties_databases(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=r"nowhere is not a folder"):
        plan([], [], missing, None, None)
    assert not missing.exists()  # nothing is made where the user pointed by mistake
    (tmp_path / "chirp.db").touch()
    with pytest.raises(ConfigError, match=r"there is no reelix\.db in it"):
        plan([], [], tmp_path, None, None)
    assert not (tmp_path / "reelix.db").exists()


def test_serve_migrates_the_store_once_and_each_worker_only_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's start-up opens what ``serve`` prepared; the migration is the parent's to run."""
    for party in ("chirp", "reelix"):
        (tmp_path / f"{party}.db").touch()
    layout = plan([], [], tmp_path, tmp_path / "store", None)
    monkeypatch.setenv(SERVE_ENV, json.dumps(layout))  # how serve hands the plan to its workers
    with pytest.raises(StoreError, match="no such table"):
        worker_app()  # a store nobody prepared: the worker does not migrate it
    prepare(layout)
    assert (tmp_path / "store" / "ledger-signing.key").is_file()
    app = worker_app()

    async def start_ask_and_stop() -> int:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as web,
        ):
            return (await web.get("/readyz")).status_code

    try:
        assert asyncio.run(start_ask_and_stop()) == 200
    finally:
        gc.unfreeze()  # the worker froze what it had made; this process goes on


def test_serve_refuses_a_bad_dataset_declaration_before_starting_a_worker(tmp_path: Path) -> None:
    for party in ("chirp", "reelix"):
        (tmp_path / f"{party}.db").touch()
    bad = tmp_path / "chirp.yaml"
    bad.write_text("party: chirp\ncollections: {posts: {columns: [}\n")
    command = [
        sys.executable, "-c", SERVE, "--port", "0", "--workers", "2", "--scenario", str(tmp_path),
        "--dataset", f"chirp={bad}", "--data-dir", str(tmp_path / "store"),
    ]  # fmt: skip
    done = subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
        command, capture_output=True, text=True, timeout=120, check=False
    )
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert str(bad) in said.replace("\n", "")
    assert "Traceback" not in said
    assert "Started parent process" not in said  # uvicorn never started


def test_serve_runs_its_workers_each_on_a_socket_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``accord serve`` hands its workers to :func:`accord.api.serving.run` (a listening socket
    each, so a client's pool of connections spreads over them) with the API's protocol."""
    from accord.api import serving
    from accord.api.serving import PROTOCOL

    for party in ("chirp", "reelix"):
        (tmp_path / f"{party}.db").touch()
    monkeypatch.setenv(SERVE_ENV, "")  # serve sets both for its workers; restored after
    monkeypatch.setenv("ACCORD_API_SECRET", generate_token(43))
    asked: dict[str, object] = {}
    monkeypatch.setattr(serving, "run", lambda *_args, **options: asked.update(options))
    serve(scenario=tmp_path, data_dir=tmp_path / "store", workers=2)
    assert (asked["workers"], asked["http"]) == (2, PROTOCOL)
