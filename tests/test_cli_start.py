"""The ``accord`` command starts quickly: its help, and each group's, loads none of the machinery
the commands run on, and a command that is not the server loads no web stack.

What is asserted is what keeps the start quick (which modules a fresh interpreter has loaded);
the CPU time of ``accord --help`` is measured and printed beside that of ``python -c pass``, a
figure to watch rather than a bound, since timings vary with the machine.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from accord.service import Accord

pytestmark = pytest.mark.integration

WEB = ("fastapi", "starlette", "authlib", "uvicorn")
"""The web stack: only ``accord serve`` and ``accord psi serve`` (and a match over HTTP) need it."""
ANALYSIS = ("duckdb", "opendp", "plotly")
"""The clean room's engine, its noise, and the demo report's charts."""
STORE = ("sqlalchemy", "alembic", "cedarpy")
"""The store, its migrations and the policy engine: every command that opens the store."""

# Runs the command in this interpreter, as the installed script does, then reports its exit
# code, what it printed and every module it left loaded.
PROBE = """
import contextlib, io, json, sys
sys.argv = ["accord", *sys.argv[1:]]
from accord.cli import main
printed = io.StringIO()
code = 0
with contextlib.redirect_stdout(printed):
    try:
        main()
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "printed": printed.getvalue(), "modules": sorted(sys.modules)}))
"""


def probe(*args: str) -> dict[str, Any]:
    """Run ``accord ARGS`` in a fresh interpreter; its exit code, output and loaded modules."""
    done = subprocess.run(  # noqa: S603 - this interpreter and a fixed script
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["stderr"] = done.stderr
    return report


def loaded(report: dict[str, Any], packages: tuple[str, ...]) -> list[str]:
    """Which of ``packages`` the probed command left loaded."""
    tops = {name.partition(".")[0] for name in report["modules"]}
    return [p for p in packages if p in tops]


def accord_command() -> list[str]:
    """The installed ``accord`` script beside this interpreter, or the module if there is none."""
    script = Path(sys.executable).with_name("accord")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "accord.cli"]


def cpu_seconds(command: list[str], runs: int) -> float:
    """User and system CPU time of one run of ``command``, the mean of ``runs`` runs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        subprocess.run(command, capture_output=True, check=True, timeout=120)  # noqa: S603
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used / runs


def test_accord_help_loads_none_of_what_the_commands_run_on(
    capsys: pytest.CaptureFixture[str], record_property: Any
) -> None:
    runs = 5
    helped = cpu_seconds([*accord_command(), "--help"], runs)
    bare = cpu_seconds([sys.executable, "-c", "pass"], runs)
    record_property("accord_help_cpu_seconds", round(helped, 3))
    record_property("python_pass_cpu_seconds", round(bare, 3))
    with capsys.disabled():
        print(
            f"\naccord --help: {helped:.3f} s CPU; python -c pass: {bare:.3f} s CPU; "
            f"ratio {helped / max(bare, 1e-3):.1f} (mean of {runs} runs each)"
        )

    report = probe("--help")
    assert report["code"] == 0, report["stderr"]
    assert "agreement" in report["printed"]
    assert "cleanroom" in report["printed"]
    assert loaded(report, (*WEB, *ANALYSIS, *STORE, "sqlglot", "fideslang")) == []


@pytest.mark.parametrize(
    "command",
    [
        ["ledger"],
        ["agreement"],
        ["cleanroom"],
        ["serve"],
        ["app"],  # the partner apps: the API's package loads nothing of the web stack by itself
        ["psi"],
        ["person"],
        ["consent"],
        ["scenario"],
        ["audit"],
        ["decide"],
        ["demo"],  # its help names the demo's audit threshold without loading the demo
        ["cleanroom", "report"],  # its --mechanism choices come without OpenDP
        ["psi", "run"],  # its --kind and --mode choices come without the protocol
    ],
    ids=" ".join,
)
def test_each_commands_help_loads_none_of_what_it_runs_on(command: list[str]) -> None:
    report = probe(*command, "--help")
    assert report["code"] == 0, report["stderr"]
    assert "Usage:" in report["printed"]
    assert loaded(report, (*WEB, *ANALYSIS, *STORE)) == []


def test_checking_an_agreement_loads_no_store_and_no_web_stack() -> None:
    example = resources.files("accord") / "examples" / "chirp-reelix.yaml"
    report = probe("agreement", "check", str(example))
    assert report["code"] == 0, report["stderr"]
    assert "valid" in report["printed"]
    assert loaded(report, (*WEB, *ANALYSIS, *STORE)) == []


@pytest.mark.parametrize(
    ("command", "code"),
    [
        pytest.param(["ledger", "show"], 0, id="ledger show"),
        pytest.param(["consent", "list", "--person", "r1", "--controller", "x"], 2, id="consent"),
        # the partner apps are in the store: their command loads none of the API's web stack
        pytest.param(["app", "revoke", "no-such-app"], 2, id="app revoke"),
    ],
)
def test_commands_on_the_store_load_no_web_stack(
    command: list[str], code: int, tmp_path: Path
) -> None:
    with Accord.open(data_dir=tmp_path):
        pass  # a migrated store and its ledger key
    store = ["--data-dir", str(tmp_path)]
    if command[0] != "app":
        store += ["--database-url", f"sqlite:///{tmp_path / 'accord.db'}"]
    report = probe(*command, *store)
    assert report["code"] == code, report["printed"] + report["stderr"]
    assert loaded(report, (*WEB, *ANALYSIS)) == []
    assert loaded(report, ("sqlalchemy",)) == ["sqlalchemy"]  # it did open the store
