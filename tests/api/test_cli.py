"""``accord serve`` (run as a process on a free port) and ``accord app`` (through Typer)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from accord import agreements as ag
from accord.api import PartnerApps
from accord.api.cli import app as apps_cli
from accord.api.cli import plan, serve
from accord.errors import ConfigError
from accord.service import Accord

pytestmark = pytest.mark.integration

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


def test_serve_plans_each_partys_database_and_declaration(tmp_path: Path) -> None:
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


def _serve_app() -> typer.Typer:
    t = typer.Typer()
    t.command()(serve)
    return t


def test_serve_runs_the_api_on_a_port(tmp_path: Path) -> None:
    store(tmp_path / "store")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-c", SERVE, "--port", "0", "--data-dir", str(tmp_path / "store")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    ) as process:
        try:
            _check_serving(process)
        finally:
            process.terminate()
            process.wait(timeout=30)


def _check_serving(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    url = None
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        found = re.search(r"running on (http://[\d.]+:\d+)", line)
        url = found.group(1) if found else None
    assert url is not None, "the server did not say where it listens"
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{url}/readyz").status_code == 200
    meta = httpx.get(f"{url}/.well-known/oauth-authorization-server").json()
    assert meta["token_endpoint"] == f"{url}/oauth/token"
    assert httpx.get(f"{url}/docs").status_code == 200
