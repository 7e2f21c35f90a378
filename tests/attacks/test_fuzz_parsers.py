"""Hypothesis on every parser of text a person or a partner writes: agreements, dataset
declarations, analysis rules, clean-room SQL, matching inputs and people files (CSV), and the
consent screens' forms. None crashes: each gives a result or one of Accord's own errors whose
message says where (the file, and the line where there is one); the CLI exits 2 on them."""

from __future__ import annotations

import string
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import yaml_text
from accord import agreements
from accord.cli import app as cli
from accord.errors import AccordError, InvalidInput
from accord.person_cli import read_people
from accord.pets.checks import QueryRefused, check_query
from accord.pets.psi.choices import Kind
from accord.pets.psi.cli import read_records
from accord.pets.rules import parse_rule
from accord.sources import datasets

EXAMPLES = resources.files("accord") / "examples"
AGREEMENT = (EXAMPLES / "chirp-reelix.yaml").read_text()
RULE = (EXAMPLES / "report-rule.yaml").read_text()
DATASET = (resources.files("accord") / "scenario" / "datasets" / "reelix.yaml").read_text()
SOURCE = "fuzz.yaml"

FAST = settings(max_examples=40, deadline=None, database=None)


def fixtures(examples: int) -> settings:
    """Settings for a test that also takes fixtures (shared by every example, as intended)."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


PARSERS: dict[str, Callable[[str], Any]] = {
    "agreement": lambda text: agreements.parse(text, source=SOURCE),
    "dataset": lambda text: datasets.parse(text, source=SOURCE),
    "analysis rule": lambda text: parse_rule(text, source=SOURCE),
}
VALID = {"agreement": AGREEMENT, "dataset": DATASET, "analysis rule": RULE}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["user.social", "functional.service", "record", "aggregate", "2026-01-01"]),
)
keys = st.one_of(
    st.sampled_from(
        ["id", "clauses", "categories", "fields", "purposes", "tables", "collections", "name"]
    ),
    st.text(max_size=12),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=6)),
    max_leaves=30,
)


def mutations(valid: str) -> st.SearchStrategy[str]:
    """``valid`` with a line dropped, doubled, cut or replaced by random text."""
    lines = valid.splitlines()

    def change(index: int, how: str, junk: str) -> str:
        changed = list(lines)
        i = index % len(changed)
        if how == "drop":
            del changed[i]
        elif how == "double":
            changed.insert(i, changed[i])
        elif how == "cut":
            changed[i] = changed[i][: len(changed[i]) // 2]
        elif how == "value":
            key, sep, _ = changed[i].partition(":")
            changed[i] = f"{key}{sep} {junk}" if sep else junk
        else:
            changed[i] = junk
        return "\n".join(changed) + "\n"

    return st.builds(
        change,
        st.integers(min_value=0, max_value=10_000),
        st.sampled_from(["drop", "double", "cut", "value", "line"]),
        st.text(max_size=40),
    )


def refusal(parse: Callable[[], object]) -> AccordError | None:
    """What ``parse`` raised of Accord's own errors, or None; anything else fails the test."""
    try:
        parse()
    except AccordError as exc:
        return exc
    return None


def judged(parser: str, text: str) -> None:
    """Parse ``text``: a result, or an input error saying where, one problem a line."""
    exc = refusal(lambda: PARSERS[parser](text))
    if exc is not None:
        assert isinstance(exc, InvalidInput), f"{type(exc).__name__} is not an input error"
        assert str(exc).strip()
        for problem in str(exc).splitlines():
            assert problem.startswith(SOURCE), problem


@pytest.mark.unit
@pytest.mark.parametrize("parser", sorted(PARSERS))
@FAST
@given(text=st.text(max_size=300))
def test_any_text_is_parsed_or_refused_saying_where(parser: str, text: str) -> None:
    judged(parser, text)


@pytest.mark.unit
@pytest.mark.parametrize("parser", sorted(PARSERS))
@FAST
@given(data=st.dictionaries(keys, documents, max_size=8))
def test_any_yaml_mapping_is_parsed_or_refused_saying_where(
    parser: str, data: dict[str, Any]
) -> None:
    judged(parser, yaml_text.dump(data))


@pytest.mark.unit
@pytest.mark.parametrize("parser", sorted(PARSERS))
@FAST
@given(data=st.data())
def test_a_valid_document_changed_anywhere_is_parsed_or_refused_saying_where(
    parser: str, data: st.DataObject
) -> None:
    judged(parser, data.draw(mutations(VALID[parser])))


# -- clean-room SQL ----------------------------------------------------------------------------

ANALYSIS = parse_rule(RULE)
SCHEMA = {
    table: [ANALYSIS.tables[table].person]
    + [c.split(".")[1] for c in (*ANALYSIS.dimensions, *ANALYSIS.metrics) if c.startswith(table)]
    for table in ANALYSIS.tables
}
TOKENS = [
    "SELECT", "FROM", "WHERE", "GROUP BY", "HAVING", "ORDER BY", "LIMIT", "UNION", "JOIN", "ON",
    "AND", "OR", "NOT", "IN", "(", ")", ",", "*", "=", "<>", "'", '"', ";", "--", "/*", "1",
    "count(*)", "sum(", "avg(", "WITH", "AS", "x", "\\", "NULL", "read_csv('/etc/passwd')",
    *SCHEMA, *(c for cols in SCHEMA.values() for c in cols),
]  # fmt: skip


def refused_or_checked(sql: str) -> None:
    exc = refusal(lambda: check_query(ANALYSIS, sql, SCHEMA))
    if exc is not None:
        assert isinstance(exc, QueryRefused), exc
        assert exc.check
        assert str(exc).startswith("clean room check")


@pytest.mark.unit
@FAST
@given(sql=st.text(max_size=200))
def test_any_text_as_a_query_is_checked_or_refused(sql: str) -> None:
    refused_or_checked(sql)


@pytest.mark.unit
@FAST
@given(parts=st.lists(st.sampled_from(TOKENS), min_size=1, max_size=30))
def test_any_sequence_of_sql_tokens_is_checked_or_refused(parts: list[str]) -> None:
    refused_or_checked(" ".join(parts))


# -- CSV inputs: matching records and people ---------------------------------------------------

csv_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.lists(st.text(alphabet=string.printable + "é\x00\u202e", max_size=12), max_size=4),
        max_size=8,
    ).map(lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass")),
    st.builds(
        lambda rows: ("person,email\n" + "\n".join(rows)).encode(),
        st.lists(st.text(alphabet=string.printable, max_size=20), max_size=6),
    ),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-csv")


@pytest.mark.unit
@fixtures(120)
@given(content=csv_bytes)
def test_a_matching_records_file_is_read_or_refused_saying_where(
    folder: Path, content: bytes
) -> None:
    path = folder / "records.csv"
    path.write_bytes(content)
    rows: list[tuple[str, str]] = []
    exc = refusal(lambda: rows.extend(read_records(path, Kind.EMAIL)()))
    if exc is not None:
        assert isinstance(exc, InvalidInput), exc
        assert str(exc.where).startswith(str(path))
    assert all(person and value for person, value in rows)


@pytest.mark.unit
@fixtures(120)
@given(content=csv_bytes.map(lambda b: b.replace(b"email", b"jurisdiction")))
def test_a_people_file_is_read_or_refused_saying_where(folder: Path, content: bytes) -> None:
    path = folder / "people.csv"
    path.write_bytes(content)
    people: list[Any] = []
    exc = refusal(lambda: people.extend(read_people(path, "reelix")))
    if exc is not None:
        assert isinstance(exc, InvalidInput), exc
        assert str(exc.where).startswith(str(path))
    assert all(p.id for p in people)


# -- the consent screens' forms ----------------------------------------------------------------

form_values = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["allow", "deny", "e30.AAAA", "x" * 5000, "user.social:functional.service"]),
)


@pytest.mark.integration
@fixtures(40)
@given(
    path=st.sampled_from(
        [
            "/oauth/authorize/consent",
            "/oauth/authorize/vppa",
            "/me/opt-out",
            "/me/consents/withdraw-all",
            "/me/consents/c1/withdraw",
            "/me/apps/x/revoke",
            "/login",
        ]
    ),
    form=st.dictionaries(
        st.sampled_from(["pending", "action", "scope", "months", "form", "person", "next"]),
        form_values,
        max_size=5,
    ),
)
# A signed form whose signature holds a character outside ASCII (hmac.compare_digest refuses to
# compare such text: it was a 500).
@example(path="/oauth/authorize/consent", form={"pending": "e30.\u00e9", "action": "allow"})
def test_any_consent_form_posted_is_answered_without_a_failure(
    client: httpx.Client, path: str, form: dict[str, str]
) -> None:
    assume(all("\x00" not in v for v in form.values()))
    r = client.post(path, data=form)
    assert r.status_code < 500, r.text
    assert "Traceback" not in r.text
    assert r.status_code in {200, 302, 303, 400, 401, 403, 404, 422}


# -- the command line exits 2 ------------------------------------------------------------------

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-cli")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("command", "valid"),
    [(("agreement", "check"), AGREEMENT), (("cleanroom", "check", "--rule"), RULE)],
    ids=["agreement check", "cleanroom check"],
)
@fixtures(12)
@given(data=st.data())
def test_the_cli_exits_2_on_a_broken_document(
    files: Path, command: tuple[str, ...], valid: str, data: st.DataObject
) -> None:
    text = data.draw(st.one_of(mutations(valid), st.text(max_size=200)))
    path = files / "document.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    extra = ("--query", "SELECT 1") if command[0] == "cleanroom" else ()
    parser = PARSERS["agreement" if command[0] == "agreement" else "analysis rule"]
    broken = refusal(lambda: parser(text)) is not None
    code, output = invoke(*command, str(path), *extra)
    if broken:
        assert code == 2, output
        assert path.name in "".join(output.split())  # where: the file
    else:
        assert code in {0, 2, 3}
