"""One exception root for everything Accord raises on purpose.

    AccordError
    ├── InvalidInput                 bad input from a person or a partner; says what and where
    │   ├── TaxonomyError            an unknown category, purpose or subject key
    │   ├── DocumentFormatError      a YAML document that does not validate (file:line: field)
    │   │   ├── AgreementFormatError     an agreement
    │   │   └── DatasetFormatError       a dataset declaration
    │   ├── ConsentError             a consent record that cannot be accepted
    │   └── RequestError             a request that is malformed (not one that is refused)
    ├── LifecycleError               an agreement moved in a way its lifecycle does not allow
    ├── NotFound                     a party, agreement, consent or person that does not exist
    ├── PolicyError                  the policy engine could not compile or evaluate
    ├── StoreError                   the database failed or refused
    ├── LedgerError                  the ledger could not append, prove or verify
    │   └── LedgerIntegrityError     the stored ledger does not verify
    ├── ConfigError                  a setting that cannot be used
    ├── RequestTimedOut              a request answered 503 at its deadline: stores nothing after
    └── (accord.gateway.errors)      Unauthenticated, Refused, GatewayError ⊃ ReleaseFailed

Foreign exceptions (SQLAlchemy, cedarpy, cryptography) are translated at the boundary by
:func:`translate`, so callers only ever catch ``AccordError``. A refused request is not an
error: it is a ``Decision`` with ``allowed=False``.
"""

from __future__ import annotations

import re
from types import TracebackType

_UNPRINTABLE = re.compile(
    # C0 controls and DEL (ESC starts terminal escape sequences), C1 controls (U+009B is a
    # one-character CSI), line and paragraph separators, and the bidirectional overrides and
    # isolates that reorder what a terminal shows (the "Trojan Source" characters, CVE-2021-42574).
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)


def visible(value: object) -> str:
    """``value`` as text fit for a message, a log line or a terminal: every control character
    (terminal escape codes, line breaks, bidirectional overrides) shown as its code, ``\\x1b`` or
    ``\\u202e``, so text someone else wrote can neither restyle a screen nor pass for another
    line of the message."""
    return _UNPRINTABLE.sub(_code_of, str(value))


def _code_of(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class AccordError(Exception):
    """Root of every error Accord raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class InvalidInput(AccordError):
    """Input that cannot be used; the message says what is wrong and where."""

    exit_code = 2


class TaxonomyError(InvalidInput):
    """An unknown data category, purpose (data use) or data subject key."""


class DocumentFormatError(InvalidInput):
    """A YAML document that does not validate; carries every problem found, one a line."""

    def __init__(self, problems: list[str], *, where: str | None = None) -> None:
        self.problems = problems
        super().__init__("\n".join(problems), where=where)


class AgreementFormatError(DocumentFormatError):
    """An agreement document that does not validate."""


class DatasetFormatError(DocumentFormatError):
    """A dataset declaration that does not validate."""


class ConsentError(InvalidInput):
    """A consent record that cannot be accepted as given."""


class RequestError(InvalidInput):
    """A request that is malformed, as opposed to one that is refused."""


class LifecycleError(AccordError):
    """An agreement moved in a way its lifecycle does not allow (a request that cannot be done as
    asked: exit 2, as bad input)."""

    exit_code = 2


class NotFound(AccordError):
    """A party, agreement, consent or person that does not exist (named wrongly: exit 2, as bad
    input)."""

    exit_code = 2


class PolicyError(AccordError):
    """The policy engine could not compile or evaluate the policies."""


class StoreError(AccordError):
    """The database failed or refused an operation."""


class LedgerError(AccordError):
    """The ledger could not append, prove or verify."""


class LedgerIntegrityError(LedgerError):
    """The stored ledger does not verify; the message says where it first differs."""


class ConfigError(AccordError):
    """A setting that cannot be used."""


class RequestTimedOut(AccordError):
    """A request other than an exchange (a token, a page) did not finish within the exchange
    time (a store that stalls): it is answered 503 and abandoned, and what it would store past
    that time it does not (see :mod:`accord.request_deadline`)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            f"the request did not finish within {seconds:g} s (a store did not answer) and was "
            "abandoned; nothing was released or issued"
        )


def translate(into: type[AccordError], doing: str) -> _Translating:
    """Turn any foreign exception raised inside the block into ``into``, saying what was being done.

    Accord's own errors pass through unchanged.
    """
    return _Translating(into, doing)


class _Translating:
    """What :func:`translate` returns: a plain context manager, not a generator's (every store
    read of every request enters several, and a generator costs three times as much)."""

    __slots__ = ("doing", "into")

    def __init__(self, into: type[AccordError], doing: str) -> None:
        self.into = into
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, AccordError) or not isinstance(exc, Exception):
            return
        raise self.into(f"{self.doing} failed: {type(exc).__name__}: {exc}") from exc
