"""Coverage-guided fuzzing (atheris, libFuzzer) of the YAML reader and the canonical JSON writer.

Run as ``python atheris_targets.py yaml|json -runs=N`` (tests/attacks/test_fuzz_atheris.py does,
for a bounded number of runs). A target returns normally for every input it is given; an
uncaught exception is a finding, and libFuzzer stops with the input that raised it.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports(include=["accord", "ruamel", "rfc8785"]):
    from accord import agreements
    from accord.errors import InvalidInput
    from accord.ledger.entries import DecisionEntry, canonical_json
    from accord.pets.rules import parse_rule

AT = datetime(2026, 1, 1, tzinfo=UTC)


def yaml_reader(data: bytes) -> None:
    """An agreement and an analysis rule from any text: a document or a clear input error that
    says where, one problem a line."""
    text = data.decode("utf-8", "replace")
    for parse in (agreements.parse, parse_rule):
        try:
            parse(text, source="fuzz.yaml")
        except InvalidInput as exc:
            lines = str(exc).splitlines()
            if not lines or not all(line.startswith("fuzz.yaml") for line in lines):
                raise AssertionError(f"an error that does not say where: {exc!r}") from exc


def canonical(data: bytes) -> None:
    """RFC 8785: any JSON value is written canonically or refused as input; what is written
    reads back as the same value and is written again byte for byte the same; and a ledger
    entry's fast writer agrees with the general one on any text it holds."""
    fuzz = atheris.FuzzedDataProvider(data)
    raw = fuzz.ConsumeBytes(fuzz.ConsumeIntInRange(0, 512))
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    try:
        written = canonical_json(value)
    except InvalidInput:
        pass
    else:
        # Read back as RFC 8785 section 3.2.2.3 reads numbers: IEEE doubles (I-JSON, RFC 7493).
        again = json.loads(written, parse_int=float)
        if canonical_json(again) != written:
            raise AssertionError(f"not stable: {written!r}")
    reason = fuzz.ConsumeUnicodeNoSurrogates(fuzz.ConsumeIntInRange(0, 200))
    rule = fuzz.ConsumeUnicodeNoSurrogates(fuzz.ConsumeIntInRange(0, 40))
    try:
        entry = DecisionEntry(
            agreement="a", reason=reason, people=0, allowed=False, rules=(rule,), at=AT
        )
    except InvalidInput:
        return
    if entry.encode() != canonical_json(entry.leaf()):
        raise AssertionError(f"the fast writer differs: {entry.encode()!r}")


TARGETS = {"yaml": yaml_reader, "json": canonical}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()
