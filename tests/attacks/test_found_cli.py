"""What hostile files and arguments found in the command line, each kept fixed: every one is
refused with a clear message and exit 2 (or the clean room's refusal, 3), promptly, with no stack
trace; nothing hangs and nothing is registered."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli import app

pytestmark = pytest.mark.integration

runner = CliRunner()


def alias_bomb() -> str:
    """342 bytes of nested YAML aliases standing for 9^9 (387 million) strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 9):
        name, prev = chr(97 + n), chr(96 + n)
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


HOSTILE: dict[str, tuple[bytes, str]] = {
    "alias bomb": (alias_bomb().encode(), "aliases are expanded"),
    "20,000 deep": (b"[" * 20_000 + b"]" * 20_000, "nested too deeply"),
    "NUL byte": (b"id: x\x00\n", "NUL character"),
    "not UTF-8": (b"id: caf\xe9\n", "not UTF-8 text"),
    # found by atheris: YAML's resolver reads `._` as a float (underscores dropped), float fails
    "a number that is none": (b"id: ._\n", "a value read as a number is not one"),
    # found by atheris: `-_` reads as an integer, and ruamel looks past its empty digits
    "a sign that is no number": (b"id: -_\n", "a value read as a number is not one"),
}


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_agreement_is_refused_with_exit_2(tmp_path: Path, case: str) -> None:
    content, says = HOSTILE[case]
    path = tmp_path / "agreement.yaml"
    path.write_bytes(content)
    code, output = run("agreement", "check", str(path))
    assert code == 2
    assert says in " ".join(output.split())


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_clean_room_rule_is_refused_with_exit_2(tmp_path: Path, case: str) -> None:
    content, says = HOSTILE[case]
    path = tmp_path / "rule.yaml"
    path.write_bytes(content)
    code, output = run("cleanroom", "check", "--rule", str(path), "--query", "SELECT 1")
    assert code == 2
    assert says in " ".join(output.split())


def test_a_query_nested_300_deep_is_refused_not_crashed(tmp_path: Path) -> None:
    code, _ = run("examples", str(tmp_path / "examples"))
    assert code == 0
    rule = tmp_path / "examples" / "report-rule.yaml"
    deep = "(" * 300 + "1" + ")" * 300
    code, output = run(
        "cleanroom",
        "check",
        "--rule",
        str(rule),
        "--query",
        f"SELECT count(*) FROM recommendations WHERE {deep} = 1",  # noqa: S608 - the attack
    )
    assert code == 3  # the clean room's refusal
    assert "nests parentheses more than 64 deep" in " ".join(output.split())


def test_a_people_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_bytes(b"person,jurisdiction\nr1,US-CA\nr\xe92,US-NY\n")
    data = ["--data-dir", str(tmp_path / "data")]
    code, output = run("person", "load", str(people), "--party", "reelix", *data)
    assert code == 2
    assert "not UTF-8 text" in output


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("javascript:alert(document.cookie)", "javascript: scheme"),
        ("data:text/html,<script>x</script>", "data: scheme"),
        ("http://reelix.example/callback", "plain http"),
        ("https://reelix.example/cb#frag", "fragment"),
        ("https://*.reelix.example/cb", "wildcard"),
        ("https://user:pw@reelix.example/cb", "user information"),
        ("/callback", "not an absolute URI"),
    ],
)
def test_an_unsafe_redirect_uri_is_refused_and_no_app_registered(
    tmp_path: Path, uri: str, says: str
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    code, _ = run("examples", str(tmp_path / "ex"))
    doc = str(tmp_path / "ex" / "chirp-reelix.yaml")
    assert run("agreement", "register", doc, *data)[0] == 0
    code, output = run(
        "app",
        "register",
        "Reelix",
        "--party",
        "reelix",
        "--agreement",
        "chirp-reelix",
        "--redirect-uri",
        uri,
        *data,
    )
    assert code == 2, output
    assert says in " ".join(output.split())
    assert "client_id" not in output


@pytest.mark.parametrize(
    "uri",
    [
        "https://reelix.example/callback",
        "http://127.0.0.1:8400/callback",
        "http://localhost/callback",
        "http://[::1]:8400/cb",
        "com.reelix.app:/callback",
    ],
)
def test_a_safe_redirect_uri_is_accepted(tmp_path: Path, uri: str) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    run("examples", str(tmp_path / "ex"))
    assert run("agreement", "register", str(tmp_path / "ex" / "chirp-reelix.yaml"), *data)[0] == 0
    code, output = run(
        "app",
        "register",
        "Reelix",
        "--party",
        "reelix",
        "--agreement",
        "chirp-reelix",
        "--redirect-uri",
        uri,
        *data,
    )
    assert code == 0, output
    assert "client_id" in output


def test_a_test_person_for_an_app_that_does_not_exist_is_exit_2(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    run("examples", str(tmp_path / "ex"))
    assert run("agreement", "register", str(tmp_path / "ex" / "chirp-reelix.yaml"), *data)[0] == 0
    code, output = run("app", "test-person", "no-such-app", "c0000001", *data)
    assert code == 2
    assert "no app 'no-such-app'" in output
    assert "SQL" not in output
