"""YAML documents validated by pydantic models, with errors that point to file, line and field.

Agreements and dataset declarations are both written by people in YAML. This reads them with
ruamel.yaml (which keeps every node's line), validates them with a pydantic model, and turns each
validation error into one line: ``file:line: path.to[0].field: what is wrong``, suggesting the
nearest valid key for a misspelt one.

Documents come from people and from partners, so reading one is bounded: a document that expands
to more than :data:`MAX_VALUES` values (a YAML alias bomb: a few hundred bytes of anchors that
stand for billions of values) or nests deeper than :data:`MAX_DEPTH` is refused with a clear
error, as are bytes YAML does not allow (a NUL) and a file that is not UTF-8.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from io import StringIO
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from accord.errors import InvalidInput, visible

M = TypeVar("M", bound=BaseModel)
Loc = tuple[int | str, ...]

MAX_VALUES = 100_000
"""Values (mappings, lists and scalars, counted after aliases are expanded) a document may hold."""
MAX_DEPTH = 64
"""How deep a document's mappings and lists may nest."""


def read_text(path: Path, *, what: str = "the file") -> str:
    """The UTF-8 text of ``path``, or a clear error: it cannot be read, or is not UTF-8 (where)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {what}: {exc.strerror}", where=str(path)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(
            f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            where=f"{path}:{line}",
        ) from None


class _TooBig(Exception):
    """A document beyond :data:`MAX_VALUES` or :data:`MAX_DEPTH`."""


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
    if "\x00" in text:
        at = text.count("\n", 0, text.index("\x00")) + 1
        raise error([f"{source}:{at}: not valid YAML: a NUL character (YAML allows none)"])
    try:
        data = YAML(typ="rt").load(StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise error([f"{source}{line}: not valid YAML: {visible(exc.problem)}"]) from exc
    except ReaderError as exc:
        # A character YAML does not allow (a control character): said with its line.
        at = text.count("\n", 0, exc.position) + 1
        what = f"U+{exc.character:04X}" if isinstance(exc.character, int) else "a character"
        problem = (
            f"not valid YAML: {what} (YAML allows no control characters but tab and line breaks)"
        )
        raise error([f"{source}:{at}: {problem}"]) from exc
    except YAMLError as exc:
        raise error([f"{source}: not valid YAML: {visible(exc)}"]) from exc
    except RecursionError:
        raise error([f"{source}: nested too deeply (at most {MAX_DEPTH} levels)"]) from None
    except (ValueError, OverflowError, IndexError) as exc:
        # A plain scalar YAML's resolver takes for a number that is none (``._`` reads as a
        # float, its underscores dropped, and ``float('.')`` fails; ``-_`` reads as an integer,
        # and ruamel looks at the first of its digits, of which there are none).
        problem = "a value read as a number is not one"
        if not isinstance(exc, IndexError):  # ruamel's own slip says nothing of the value
            problem += f" ({visible(str(exc))})"
        raise error([f"{source}: not valid YAML: {problem}"]) from None
    if not isinstance(data, Mapping):
        raise error([f"{source}:1: {what} is a mapping of keys to values"])
    try:
        plain = _plain(data, [0], 0)
    except _TooBig as exc:
        raise error([f"{source}: {exc}"]) from None
    try:
        return model.model_validate(plain)
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


def _plain(node: Any, count: list[int], depth: int) -> Any:
    """``node`` as plain dicts and lists, counting every value (aliases expanded) in ``count``."""
    count[0] += 1
    if count[0] > MAX_VALUES:
        raise _TooBig(
            f"holds more than {MAX_VALUES:,} values once its aliases are expanded "
            "(a document of this kind is far smaller; YAML anchors and aliases repeated "
            "inside each other can stand for billions)"
        )
    if depth > MAX_DEPTH:
        raise _TooBig(f"nested too deeply (at most {MAX_DEPTH} levels)")
    if isinstance(node, Mapping):
        return {str(k): _plain(v, count, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, count, depth + 1) for v in node]
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
    # Keys and values quoted from the document may hold line breaks: one problem, one line.
    return f"{source}:{line_of(data, loc)}: {visible(path or '(document)')}: {visible(message)}"
