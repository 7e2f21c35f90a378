"""What a private match is asked for: the kind of identifiers matched, and what the client learns.

The names live apart from the protocol (:mod:`accord.pets.psi`) and the normalisation
(:mod:`accord.pets.psi.ids`), so that naming one (an option of ``accord psi``) loads neither
libsodium nor libphonenumber.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """What an identifier is."""

    EMAIL = "email"
    PHONE = "phone"


class Mode(StrEnum):
    """What the client learns."""

    INTERSECTION = "intersection"
    SIZE = "size"
