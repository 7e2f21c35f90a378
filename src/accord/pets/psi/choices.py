"""What a private match is asked for: the kind of identifiers matched, and what the client learns.

The names live apart from the protocol (:mod:`accord.pets.psi`) and the normalisation
(:mod:`accord.pets.psi.ids`), so that naming one (an option of ``accord psi``) loads neither
libsodium nor libphonenumber.
"""

from __future__ import annotations

from enum import StrEnum

from accord.errors import InvalidInput


class Kind(StrEnum):
    """What an identifier is."""

    EMAIL = "email"
    PHONE = "phone"


class Mode(StrEnum):
    """What the client learns."""

    INTERSECTION = "intersection"
    SIZE = "size"


class Protocol(StrEnum):
    """How the match is computed (see :mod:`accord.pets.psi`)."""

    ECDH = "ecdh"
    OPRF = "oprf"


OPRF_FROM = 2_000
"""Client identifiers from which the OPRF protocol is the faster (``benchmarks/psi.py``)."""
OPRF_MAX = 1 << 25
"""The most client identifiers the OPRF protocol takes (:mod:`accord.pets.psi.params`)."""


def choose(mode: Mode, count: int) -> Protocol:
    """The protocol for a match of ``count`` client identifiers, when none is named.

    Only ECDH can reveal just the size of the intersection; of the two, OPRF is the faster from
    :data:`OPRF_FROM` identifiers.
    """
    if mode is Mode.INTERSECTION and OPRF_FROM <= count <= OPRF_MAX:
        return Protocol.OPRF
    return Protocol.ECDH


def check(protocol: Protocol | None, mode: Mode) -> None:
    """Refuse a protocol named for a mode it cannot give, before anything is decided or sent."""
    if protocol is Protocol.OPRF and mode is not Mode.INTERSECTION:
        raise InvalidInput(
            "the OPRF protocol shows the client which of its identifiers matched; for the size "
            "alone, use --protocol ecdh",
            where="--protocol oprf",
        )
