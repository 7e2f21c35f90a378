"""The noise mechanisms a differentially private query can get.

What each proves, and when each is the better choice, is told in :mod:`accord.pets.dp`; the names
live apart from it so that naming one (an option of ``accord cleanroom report``) loads no OpenDP.
"""

from __future__ import annotations

from enum import StrEnum


class Mechanism(StrEnum):
    """The noise a query gets."""

    LAPLACE = "laplace"
    GAUSSIAN = "gaussian"
