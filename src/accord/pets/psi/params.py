"""The parameters of the OPRF protocol, from the set sizes and the security wanted.

Chase and Miao, "Private Set Intersection in the Internet Setting from Lightweight Oblivious
PRF", CRYPTO 2020 (ePrint 2020/729), §3.2 and Table 1. The receiver (client, ``n1`` items) puts
its items into a ``w × m`` bit matrix ``D``: column ``i`` of ``D`` has a 0 at row ``v_i(x)`` for
each of its ``x``, a 1 elsewhere, ``v(x) = F_k(H1(x)) ∈ [m]^w``. The sender learns, per column,
either ``A_i`` or ``A_i ⊕ D_i`` (by its secret bit ``s_i``), and sends ``H2`` of the bits
``C_i[v_i(y)]`` for each of its ``y``.

**Computational security (kappa = 128).** For a ``y`` the receiver does not hold, ``C_i[v_i(y)]``
equals ``A_i[v_i(y)] ⊕ s_i`` wherever ``D_i[v_i(y)] = 1``: the receiver would have to guess
``s`` on those columns to compute ``H2``'s input. The paper asks for at least ``d = kappa = 128``
such columns, for every ``y`` of the sender's outside the receiver's set.

**Statistical security (sigma = 40).** Each ``v_i(y)`` is uniform in ``[m]`` and independent of the
receiver's ``n1`` items, so ``D_i[v_i(y)] = 1`` with probability ``p = (1 - 1/m)^n1``,
independently per column: the number of 1s is ``Binomial(w, p)``. By the union bound over the
sender's ``n2`` items, ``w`` is the least width with ``n2 · Pr[Binomial(w, p) < kappa] ≤ 2^-sigma``
(:func:`width`). With ``m = n1`` this gives the paper's Table 1 exactly (591 for ``n = 2^10``,
609 for ``2^16``, 621 for ``2^20``, 633 for ``2^24``); a test checks it.

**Output length.** A false match needs ``H2`` of a ``y ∉ X`` to equal that of some ``x ∈ X``:
at most ``n1 · n2 · 2^-l2``, so ``l2 = sigma + log2 n1 + log2 n2`` bits (the paper's choice),
rounded up to bytes.

**Height.** ``m`` is the power of two at least ``n1`` (and at least 2^8), so that an index is
``log2 m`` uniform bits of the PRF's output; ``p`` is then between ``e^-1`` and ``e^-1/2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

KAPPA = 128
"""Computational security: bits of ``s`` the receiver would have to guess (AES-128, Curve25519)."""
SIGMA = 40
"""Statistical security: the chance that a parameter bound fails is at most 2^-sigma."""
MIN_HEIGHT_LOG = 8
MAX_HEIGHT_LOG = 25
"""The largest receiver set is 2^25 items (a column of the matrix is then 4 MiB)."""


def log2_tail(width: int, p: float, below: int) -> float:
    """``log2 Pr[Binomial(width, p) < below]``, summed exactly in the log domain."""
    if below <= 0:
        return -math.inf
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(width + 1)
        - math.lgamma(k + 1)
        - math.lgamma(width - k + 1)
        + k * log_p
        + (width - k) * log_q
        for k in range(min(below, width + 1))
    ]
    top = max(terms)
    return (top + math.log(sum(math.exp(t - top) for t in terms))) / math.log(2)


@cache
def width(n1: int, n2: int, height: int, *, sigma: int = SIGMA, kappa: int = KAPPA) -> int:
    """The least ``w`` with ``n2 · Pr[Binomial(w, (1 - 1/m)^n1) < kappa] ≤ 2^-sigma``, ``m`` the
    height."""
    p = math.exp(max(n1, 1) * math.log1p(-1 / height))
    budget = -sigma - math.log2(max(n2, 1))
    low, high = kappa, 2 * kappa
    while log2_tail(high, p, kappa) > budget:
        low, high = high, 2 * high
    while low < high:  # the tail shrinks as the width grows
        middle = (low + high) // 2
        if log2_tail(middle, p, kappa) <= budget:
            high = middle
        else:
            low = middle + 1
    return low


@dataclass(frozen=True, slots=True)
class Params:
    """What both sides compute from the two set sizes before the oblivious transfers."""

    ours: int
    theirs: int
    height_log: int
    width: int
    out_bytes: int

    @property
    def height(self) -> int:
        """``m``, the rows of the matrix (a power of two)."""
        return 1 << self.height_log

    @property
    def column_bytes(self) -> int:
        """Bytes of one column of the matrix, packed."""
        return self.height // 8

    @property
    def row_bytes(self) -> int:
        """Bytes of one item's ``w`` gathered bits, packed (what ``H2`` hashes)."""
        return -(-self.width // 8)

    @property
    def block_columns(self) -> int:
        """Columns per MATRIX message: a multiple of 8, about 8 MiB a message."""
        return max(8, min(-(-self.width // 8) * 8, ((8 << 20) // self.column_bytes) // 8 * 8))


def params(ours: int, theirs: int, *, sigma: int = SIGMA, kappa: int = KAPPA) -> Params:
    """The parameters for a receiver of ``ours`` items and a sender of ``theirs``."""
    height_log = max(MIN_HEIGHT_LOG, (max(ours, 1) - 1).bit_length())
    if height_log > MAX_HEIGHT_LOG:
        raise ValueError(f"{ours} items is more than the OPRF protocol takes (2^{MAX_HEIGHT_LOG})")
    w = width(ours, theirs, 1 << height_log, sigma=sigma, kappa=kappa)
    bits = sigma + math.log2(max(ours, 1)) + math.log2(max(theirs, 1))
    return Params(ours, theirs, height_log, w, math.ceil(bits / 8))
