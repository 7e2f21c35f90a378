"""YAML documents validated by pydantic models, with errors that point to file, line and field.

Agreements and dataset declarations are both written by people in YAML. This reads them with
ruamel.yaml (which keeps every node's line), validates them with a pydantic model, and turns each
validation error into one line: ``file:line: path.to[0].field: what is wrong``, suggesting the
nearest valid key for a misspelt one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from io import StringIO
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from accord.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)
Loc = tuple[int | str, ...]


def parse_document(
    text: str,
    model: type[M],
    *,
    source: str,
    what: str,
    error: Callable[[list[str]], InvalidInput],
    model_at: Callable[[Loc], type[BaseModel]],
) -> M:
    """Parse ``text`` as YAML and validate it as ``model``; raise ``error(problems)`` if it fails.

    ``what`` names the document ("an agreement") in the message for a document that is not a
    mapping; ``model_at`` says which model's keys an error location's last part is one of, for
    suggesting the nearest key.
    """
    try:
        data = YAML(typ="rt").load(StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise error([f"{source}{line}: not valid YAML: {exc.problem}"]) from exc
    if not isinstance(data, Mapping):
        raise error([f"{source}:1: {what} is a mapping of keys to values"])
    try:
        return model.model_validate(_plain(data))
    except ValidationError as exc:
        errors = exc.errors()
        # A list whose items failed is also reported "too short"; the item errors say more.
        locs = [e["loc"] for e in errors]
        errors = [
            e
            for e in errors
            if not (
                e["type"] == "too_short"
                and any(len(d) > len(e["loc"]) and d[: len(e["loc"])] == e["loc"] for d in locs)
            )
        ]
        raise error([_describe(e, data, source, model_at) for e in errors]) from exc


def _plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def line_of(data: Any, loc: Loc) -> int:
    """The 1-based line of the deepest node of ``loc`` that exists in the document."""
    node, line = data, 1
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _keys(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _describe(err: Any, data: Any, source: str, model_at: Callable[[Loc], type[BaseModel]]) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        known = _keys(model_at(loc))
        nearest = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {nearest[0]!r}?" if nearest else f"; known keys: {', '.join(known)}"
        message = f"unknown key{hint}"
    elif err["type"] == "missing":
        message = "required and missing"
    return f"{source}:{line_of(data, loc)}: {path or '(document)'}: {message}"
