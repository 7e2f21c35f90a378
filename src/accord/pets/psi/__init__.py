"""Private set intersection: which identifiers two parties share, without showing the rest.

Two protocols, one interface (:func:`accord.pets.psi.ecdh.match` and :class:`Server` choose by
the HELLO's ``protocol``):

- :mod:`~accord.pets.psi.ecdh`: elliptic-curve Diffie–Hellman matching on Curve25519
  (:mod:`~accord.pets.psi.curve`); three curve operations per identifier; the only one that can
  reveal just the size of the intersection.
- :mod:`~accord.pets.psi.oprf`: Chase and Miao's private set intersection from a lightweight
  oblivious PRF (CRYPTO 2020): a few hundred base oblivious transfers on the same curve
  (:mod:`~accord.pets.psi.ot`), then only AES and hashing over bit matrices.

Their messages are the frames of :mod:`~accord.pets.psi.wire`, carried over HTTP by
:mod:`~accord.pets.psi.http`; whom each side feeds in is decided by Accord
(:mod:`~accord.pets.psi.consented`); ``accord psi`` is :mod:`~accord.pets.psi.cli`.

The names below are importable from this package as they were from the single module it grew
out of; they are loaded when first used, so that naming the package (as the CLI does to build its
help) loads no cryptography.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accord.errors import AccordError
    from accord.pets.psi.choices import Kind, Mode
    from accord.pets.psi.ecdh import (
        CHUNK,
        MAX_CHUNK,
        MAX_ITEMS,
        Admit,
        LocalTransport,
        Result,
        Server,
        Transport,
        identifiers,
        intersect,
        match,
    )
    from accord.pets.psi.ids import encode, normalise
    from accord.pets.psi.wire import (
        Frame,
        MatchError,
        ProtocolError,
        Type,
        decode,
        error_frame,
        json_frame,
        raise_error,
    )

_WHERE = {
    "AccordError": "accord.errors",
    "Kind": "accord.pets.psi.choices",
    "Mode": "accord.pets.psi.choices",
    "encode": "accord.pets.psi.ids",
    "normalise": "accord.pets.psi.ids",
    **dict.fromkeys(
        (
            "CHUNK",
            "MAX_CHUNK",
            "MAX_ITEMS",
            "Admit",
            "LocalTransport",
            "Result",
            "Server",
            "Transport",
            "identifiers",
            "intersect",
            "match",
        ),
        "accord.pets.psi.ecdh",
    ),
    **dict.fromkeys(
        (
            "Frame",
            "MatchError",
            "ProtocolError",
            "Type",
            "decode",
            "error_frame",
            "json_frame",
            "raise_error",
        ),
        "accord.pets.psi.wire",
    ),
}

__all__ = [
    "CHUNK",
    "MAX_CHUNK",
    "MAX_ITEMS",
    "AccordError",
    "Admit",
    "Frame",
    "Kind",
    "LocalTransport",
    "MatchError",
    "Mode",
    "ProtocolError",
    "Result",
    "Server",
    "Transport",
    "Type",
    "decode",
    "encode",
    "error_frame",
    "identifiers",
    "intersect",
    "json_frame",
    "match",
    "normalise",
    "raise_error",
]


def __getattr__(name: str) -> Any:
    """The public names, each from its module on first use (PEP 562)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
