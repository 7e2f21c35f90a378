"""The README documents every setting and every command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main

from accord.cli import app
from accord.config import SETTINGS

pytestmark = pytest.mark.unit
README = (Path(__file__).parent.parent / "README.md").read_text()


def commands(group: Any, prefix: str = "accord") -> list[str]:
    out = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if hasattr(command, "commands"):  # a group of commands
            out.extend(commands(command, path))
        else:
            out.append(path)
    return out


def test_every_setting_is_documented() -> None:
    missing = [name for name in SETTINGS if f"`{name}`" not in README]
    assert not missing, missing


def test_every_setting_has_a_description() -> None:
    assert all(SETTINGS.values())


def test_every_command_is_documented() -> None:
    found = commands(typer.main.get_command(app))
    assert "accord agreement check" in found
    missing = [c for c in found if f"`{c}`" not in README]
    assert not missing, missing
