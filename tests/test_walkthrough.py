"""A newcomer's first hour, as a test.

The repository's tracked files are copied as a clone would hold them (a file used by the docs
but never added to the repository fails here). In the copy, `make demo` runs, then every shell
block of the README and of docs/ as written, in order, in one shell per block, then every command
the demo's report suggests; each command's output is checked. Then `accord serve`, started the way
the README says, answers its start page and API reference, and a person of the scenario signs in.

What is not run: `make test` (this test is part of it), and the installation `make demo` does
first (a virtual environment and packages: CI's `make test` on a fresh clone runs the same
install). The copy's `.venv` runs this interpreter on the copy's own sources.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
MARK = "::command::"

Check = Callable[[str, Path], None]


def has(*texts: str) -> Check:
    def check(output: str, _: Path) -> None:
        for text in texts:
            assert text in output, f"expected {text!r} in:\n{output}"

    return check


def has_words(*texts: str) -> Check:
    """Each text is in the output, whatever the terminal's wrapping did to its spaces."""

    def check(output: str, _: Path) -> None:
        words = " ".join(output.split())
        for text in texts:
            assert " ".join(text.split()) in words, f"expected {text!r} in:\n{output}"

    return check


def file_is_json(name: str) -> Check:
    def check(_: str, cwd: Path) -> None:
        bundle = json.loads((cwd / name).read_text())
        assert bundle["entries"], "the proof names the person's entries"

    return check


def decided_as_the_readme_shows(output: str, _: Path) -> None:
    shown = _readme_decide_output()
    printed = [line.rstrip() for line in output.strip("\n").splitlines()]
    assert len(printed) == len(shown), f"printed:\n{output}\nthe README shows:\n" + "\n".join(shown)
    for got, want in zip(printed, shown, strict=True):
        if "ledger entry #" in want:  # the entry's index depends on what ran before
            assert re.fullmatch(r"│ ledger entry #\d+ +│", got), got
        else:
            assert got == want


def file_exists(name: str) -> Check:
    def check(_: str, cwd: Path) -> None:
        assert (cwd / name).is_file(), f"{name} was not written"

    return check


def matches_line(pattern: str) -> Check:
    def check(output: str, _: Path) -> None:
        assert re.search(pattern, output, re.M), f"expected a line like {pattern!r} in:\n{output}"

    return check


def lines_are(*lines: str) -> Check:
    def check(output: str, _: Path) -> None:
        assert output.split("\n") == [*lines, ""], output

    return check


def printed_as_shown(doc: str, after: str) -> Check:
    """The output is what docs/`doc` shows in the first plain ``` block after the text `after`,
    word for word (the terminal's wrapping and ledger entry numbers aside)."""

    def check(output: str, _: Path) -> None:
        shown = _shown_after(doc, after)
        assert _words(output) == _words(shown), f"printed:\n{output}\n{doc} shows:\n{shown}"

    return check


def rows_shown(output: str, _: Path) -> None:
    match = re.search(r"(\d+) rows", output)
    assert match is not None, output
    assert int(match.group(1)) > 0, f"the report shows no row:\n{output}"
    assert "released from the room" in output


# Each command run is matched by the first pattern that fits; a command no pattern fits fails the
# test, so a command added to the docs gets its output checked.
CHECKS: list[tuple[str, Check]] = [
    (r"^source \.venv/bin/activate$", has()),
    (r"^export ", has()),
    (r"^CLIENT_ID=", has()),
    (r"^accord ledger verify", has("✓ the ledger verifies")),
    (r"^accord ledger prove .* > proof\.json$", file_is_json("proof.json")),
    (r"verify_proof\.py proof\.json", has("ok   ", "under a checkpoint signed by")),
    (r"^accord ledger show", has("Ledger:", "latest checkpoint")),
    (r"^accord ledger consistency .*--json", has('"verifies": true')),
    (r"^accord ledger consistency ", has("is a prefix of the tree of")),
    (r"^accord audit$", has("audit: no differences")),
    (r"^accord audit .*--json > audit\.json$", has()),
    (
        r"^accord cleanroom report --epsilon",
        has("noise: rows shown only where", "spent the budget of 1,037 people", "released from"),
    ),
    (r"^accord cleanroom report", rows_shown),
    (
        r"^accord ads spend --by month$",
        has_words(
            "The money beside the data", "per month", "Reelix", "2026-11", "clauses in force"
        ),
    ),
    (
        r"^accord ads spend$",
        has_words(
            "The money beside the data",
            "Reelix",
            "2026",
            "clauses in force",
            "ad_spend entries",
            "the same as the spend records",
        ),
    ),
    (
        r"^accord ads simulate .*--data-dir accord-ads$",
        has_words("ad requests", "ledger entries", "The money beside the data", "Reelix"),
    ),
    (r"^accord ads train$", has_words("model clicks-", "AUC", "calibration error", "ledger entry")),
    (r"^accord ads partner .*--json$", has('"audience"', '"withdrawn"', '"lift"')),
    (r"^accord ads partner$", has_words("audience on Chirp", "built again", "lookalike", "lift")),
    (r"^accord ads partner --engine spark$", has_words("audience on Chirp", "lookalike", "lift")),
    (r"^QUERY=", has()),
    (r"^accord cleanroom check ", has("allowed under the aggregation rule", 'ORDER BY "sends"')),
    (r"^accord cleanroom run ", printed_as_shown("cleanroom.md", "room's agreement, and prints")),
    (r"^accord decide .* --at 2026-11-29$", decided_as_the_readme_shows),
    (r"^accord decide .*--title title-0003$", has("ALLOWED", "people let through: 1 of 8")),
    (r"^accord examples$", has("Examples written to accord-examples", "members.csv")),
    (r"^accord examples --force > /dev/null$", file_exists("accord-examples/report-rule.yaml")),
    (
        r"^accord examples --force$",
        has("chirp-reelix-audience.yaml", "chirp-audience.csv", "reelix-audience.csv"),
    ),
    (
        r"^accord agreement register \S*chirp-reelix-audience\.yaml$",
        has("registered chirp-reelix-audience v1: draft"),
    ),
    (
        r"^accord agreement review chirp-reelix-audience ",
        has("chirp-reelix-audience: approved (reviewed by Privacy board)"),
    ),
    (r"^accord agreement activate chirp-reelix-audience$", has("chirp-reelix-audience: active")),
    (r"^accord person load \S*/chirp-audience\.csv ", has("6 people of chirp recorded")),
    (r"^accord person load \S*/reelix-audience\.csv ", has("6 people of reelix recorded")),
    (r"^accord consent grant --id \S+-match ", matches_line(r"^consent [cr]\d{7}-match recorded$")),
    (
        r"^accord consent opt-out --person c0000003 ",
        has("opt-out of sale/sharing recorded for c0000003 at chirp"),
    ),
    (
        r"^accord psi run .* --out accord-psi/matched\.txt$",
        printed_as_shown("psi.md", "match prints"),
    ),
    (r"^cat accord-psi/matched\.txt$", lines_are("c0000001", "c0000002")),
    (r"^accord psi run .* --mode size$", printed_as_shown("psi.md", "learns only how many:")),
    (
        r"^accord psi run .* --protocol oprf$",
        printed_as_shown("psi.md", "With the OPRF protocol it prints"),
    ),
    (r"^accord agreement check ", has("chirp-reelix.yaml: valid")),
    (r"^accord agreement register ", has("registered chirp-reelix v1: draft")),
    (r"^accord agreement review ", has("approved (reviewed by Privacy board)")),
    (r"^accord agreement activate ", has("chirp-reelix: active")),
    (r"^accord agreement list$", has("chirp-reelix", "active")),
    (r"^accord person load ", has("8 people of reelix recorded")),
    (r"^accord consent grant --id (\S+)", has("recorded")),
    (r"^accord consent opt-out ", has("opt-out of sale/sharing recorded for r0000002")),
    (r"^accord consent opt-in ", has("opt-out of sale/sharing withdrawn for r0000002")),
    (r"^accord consent list ", has("r0000001-feed", "in force")),
    (r"^accord consent withdraw r0000001-feed", has("consent r0000001-feed withdrawn")),
    (r"^accord person erase ", has("erased r0000003 at reelix", "recipients told: chirp")),
    (r"^accord serve .*&$", has()),
    (r"^accord app register ", has()),
    (r"^accord app review ", has("approved")),
]


def _readme_decide_output() -> list[str]:
    """The output block the README shows right after its `accord decide ... --at` block."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"--at 2026-11-29\n```\n\n```\n(.*?)\n```", readme, re.S)
    assert found is not None, "the README shows the decision's output after the command"
    return [line.rstrip() for line in found.group(1).splitlines()]


def _shown_after(doc: str, after: str) -> str:
    """The first plain ``` block of docs/`doc` after the text `after`."""
    text = (ROOT / "docs" / doc).read_text()
    assert after in text, f"{doc} has no {after!r}"
    found = re.search(r"^```\n(.*?)\n```", text[text.index(after) :], re.S | re.M)
    assert found is not None, f"{doc} shows no output after {after!r}"
    return found.group(1)


def _words(text: str) -> str:
    """The text's words, one space apart; every ledger entry's number as N."""
    return " ".join(re.sub(r"ledger entry #?\d+", "ledger entry N", text).split())


def _shell_blocks(path: Path) -> list[list[str]]:
    """Each ```sh block of a Markdown file as its commands (continuations joined, comments
    dropped)."""
    blocks = re.findall(r"^```sh\n(.*?)^```", path.read_text(), re.S | re.M)
    commands = []
    for block in blocks:
        lines: list[str] = []
        pending = ""
        for raw in block.splitlines():
            line = pending + raw
            if line.endswith("\\"):
                pending = line[:-1]
                continue
            pending = ""
            code = _strip_comment(line).strip()
            if code:
                lines.append(re.sub(r"\s+", " ", code))
        commands.append(lines)
    return commands


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a `#` outside quotes, after a space)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i]
    return line


def _copy_of_the_repository(target: Path) -> Path:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        source = ROOT / name.decode()
        if source.is_file():
            destination = target / name.decode()
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


def _venv_running_this_interpreter(clone: Path) -> dict[str, str]:
    """`.venv/bin/{python,accord,activate}` of the copy, on its own sources; the install stamp
    `make` looks for, so `make demo` goes straight to the demo."""
    bin_dir = clone / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(
        f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(clone / 'src'))} "
        f'exec {shlex.quote(sys.executable)} "$@"\n'
    )
    accord = bin_dir / "accord"
    accord.write_text(f'#!/bin/sh\nexec {shlex.quote(str(python))} -m accord.cli "$@"\n')
    for script in (python, accord):
        script.chmod(0o755)
    (bin_dir / "activate").write_text(f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"\n')
    checksum = subprocess.run(
        ["cksum", "pyproject.toml"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.split()[0]
    (clone / ".venv" / f".installed-{checksum}").touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env.update(COLUMNS="100", NO_COLOR="1", TERM="dumb", PYTHONDONTWRITEBYTECODE="1")
    # The shell's PATH without the copy's venv: `source .venv/bin/activate` is what adds it.
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not p.endswith(".venv/bin")
    )
    found = subprocess.run(
        [str(python), "-c", "import accord; print(accord.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()
    assert found.startswith(str(clone)), f"the copy's accord must be its own, not {found}"
    return env


def _run_block(commands: list[str], clone: Path, env: dict[str, str], where: str) -> None:
    """Run one block's commands in one shell, as written; check each command's output."""
    script = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    if not any(c.startswith("source ") for c in commands):
        script.append("source .venv/bin/activate")  # the README's first step, for every block
    for command in commands:
        script.append(f"echo {shlex.quote(MARK + command)}")
        script.append(f"{command} 2>&1")
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    parts = done.stdout.split(MARK)[1:]
    ran = {}
    for part in parts:
        command, _, output = part.partition("\n")
        ran[command] = output
    last = parts[-1].partition("\n")[0] if parts else "(nothing)"
    assert done.returncode == 0, (
        f"{where}: `{last}` exited {done.returncode}:\n{ran.get(last, '')}{done.stderr}"
    )
    for command in commands:
        for pattern, check in CHECKS:
            if re.search(pattern, command):
                check(ran[command], clone)
                break
        else:
            pytest.fail(f"{where}: no check for `{command}`: add one to CHECKS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, data: dict[str, str] | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Accept": "text/html"})  # noqa: S310
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: object, **__: object) -> None:
        return None


def _serve_and_sign_in(clone: Path, env: dict[str, str]) -> None:
    port = _free_port()
    server = subprocess.Popen(
        ["bash", "-c", f"source .venv/bin/activate && exec accord serve --port {port}"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = _get(f"{base}/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, server.communicate()[0]
            assert time.monotonic() < deadline, "accord serve did not answer within a minute"
            time.sleep(0.3)
        status, page = _get(f"{base}/")
        assert status == 200
        assert "chirp" in page
        assert "reelix" in page
        status, page = _get(f"{base}/docs")
        assert status == 200
        assert "swagger" in page.lower()
        # docs/api.md's person of the scenario signs in: the store holds the scenario's people.
        status, page = _get(f"{base}/login", {"person": "c0000042", "next": "/me/apps?party=chirp"})
        assert status == 303, page
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "serving the store" in output
    assert "Traceback" not in output


# Every documented command in turn: far longer than one test may otherwise take.
@pytest.mark.timeout(3600)
def test_a_newcomer_runs_the_readme_the_docs_and_the_report_as_written(tmp_path: Path) -> None:
    clone = _copy_of_the_repository(tmp_path / "accord")
    env = _venv_running_this_interpreter(clone)
    demo = subprocess.run(
        ["make", "demo"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "report written to accord-report.html" in demo.stdout
    first, *blocks = _shell_blocks(clone / "README.md")
    assert first[0].startswith("make demo")
    for i, commands in enumerate(blocks, start=2):
        _run_block(commands, clone, env, f"README.md, shell block {i}")
    for doc in sorted((clone / "docs").glob("*.md")):
        for i, commands in enumerate(_shell_blocks(doc), start=1):
            _run_block(commands, clone, env, f"{doc.name}, shell block {i}")
    report = (clone / "accord-report.html").read_text()
    suggested = re.findall(
        r"<tr><td><code>(.*?)</code></td>", report.split('id="check-it-yourself"')[1]
    )
    assert suggested, "the report suggests what to run next"
    steps = [s.replace("&gt;", ">").replace("&amp;", "&") for s in suggested]
    _run_block([s for s in steps if s != "accord serve"], clone, env, "the report's next steps")
    assert "accord serve" in steps
    _serve_and_sign_in(clone, env)
