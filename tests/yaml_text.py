"""Dump plain data as YAML text, for building agreement documents in tests."""

from __future__ import annotations

from io import StringIO
from typing import Any

from ruamel.yaml import YAML


def dump(data: Any) -> str:
    yaml = YAML()
    out = StringIO()
    yaml.dump(data, out)
    return out.getvalue()
