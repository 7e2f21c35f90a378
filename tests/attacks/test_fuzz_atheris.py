"""atheris (libFuzzer for Python) on the YAML reader and the canonical JSON writer, for a bounded
number of runs each; the targets and what they check are in atheris_targets.py. Both fuzzers run
at once, each in its own process (libFuzzer ends the process it runs in)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TARGETS = Path(__file__).with_name("atheris_targets.py")
RUNS = {"yaml": 2_000, "json": 20_000}
"""Inputs tried per target: a few seconds each, with the coverage of many more random ones."""


@pytest.mark.integration
def test_the_yaml_reader_and_canonical_json_survive_fuzzing(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    running = {
        name: subprocess.Popen(  # noqa: S603 - this interpreter, on a script of the suite
            [sys.executable, str(TARGETS), name, f"-runs={runs}", "-max_total_time=60"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, runs in RUNS.items()
    }
    # Every process waited for (and its pipe closed) before any is judged.
    outputs = {name: process.communicate(timeout=120)[0] for name, process in running.items()}
    for name, process in running.items():
        output = outputs[name]
        assert process.returncode == 0, f"{name}: {output[-3000:]}"
        assert f"Done {RUNS[name]} runs" in output or "Done" in output, output[-2000:]
    assert not list(tmp_path.glob("crash-*"))
