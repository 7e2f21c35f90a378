"""Differentially private counts, sums and means, and the choice of groups, with OpenDP's noise.

A query is made private in three steps:

1. **Contribution bounding**, so that one person can change the exact answer only by a known
   amount (its *sensitivity*): each person contributes at most ``max_rows`` rows (extra rows are
   dropped at random), and every value is clamped into ``[lower, upper]``. Bounding is done where
   the rows are, in SQL (:func:`bounded_rows_sql`), so that a query over millions of rows costs
   about what the plain query costs.
2. **Noise** from OpenDP's measurements, calibrated by OpenDP's own privacy maps to the epsilon
   (and delta) asked for: :func:`calibrate` searches the noise scale whose proven privacy loss at
   this sensitivity is within the budget.
3. **Selection** of the groups a grouped query shows (:func:`calibrate_selection`): a group shows
   only if its count of people plus noise reaches a threshold, with OpenDP's threshold
   mechanism, so that whether a group appears at all is differentially private too. For that
   count each person is counted in one group only (Wilson et al., *Differentially Private SQL
   with Bounded User Contribution*, PoPETs 2020), which keeps its noise and threshold low.

Which mechanism, and why:

* **Laplace** (Dwork, McSherry, Nissim and Smith, *Calibrating Noise to Sensitivity in Private
  Data Analysis*, TCC 2006) gives pure epsilon-DP, with noise scaled to the L1 sensitivity. It is
  the default: a report of a few numbers, where its tighter noise and its delta of zero are best.
  Counts get OpenDP's discrete Laplace (Ghosh, Roughgarden and Sundararajan 2012), which adds an
  integer and so has none of the floating-point weaknesses of textbook Laplace (Mironov, *On
  Significance of the Least Significant Bits for Differential Privacy*, CCS 2012).
* **Gaussian** (Dwork and Roth 2014, Appendix A; Canonne, Kamath and Steinke, *The Discrete
  Gaussian for Differential Privacy*, 2020) gives (epsilon, delta)-DP, with noise scaled to the L2
  sensitivity. It is the better choice when one query releases many cells at once (a report by
  day × interface × surface × variant) and each person's rows spread over several of them, since
  the L2 sensitivity of such a vector grows only as the square root of the cells a person touches;
  OpenDP proves it under zero-concentrated DP and converts to (epsilon, delta) for the delta given.

Sensitivities (a neighbouring dataset adds or removes one person, whose rows are bounded):
a count is ``max_rows``; a sum is ``max_rows * max(|lower|, |upper|)``; a mean is a noisy sum over
a noisy count, each spending half of the epsilon (and delta). The bound holds for the whole vector
of a grouped query too, since the person's ``max_rows`` rows are all they can add across groups.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import opendp.prelude as dp

from accord.errors import InvalidInput
from accord.pets.mechanisms import Mechanism

dp.enable_features("contrib")


@dataclass(frozen=True, slots=True)
class Bounds:
    """How much one person may contribute: rows, and the range each value is clamped into."""

    max_rows: int = 1
    lower: float = 0.0
    upper: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.max_rows, bool) or not isinstance(self.max_rows, int):
            raise InvalidInput(f"max_rows must be a whole number, not {self.max_rows!r}")
        if self.max_rows < 1:
            raise InvalidInput(f"max_rows must be at least 1, not {self.max_rows}")
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            raise InvalidInput(f"bounds must be finite, not [{self.lower}, {self.upper}]")
        if self.lower > self.upper:
            raise InvalidInput(f"lower bound {self.lower} is above upper bound {self.upper}")

    @property
    def count_sensitivity(self) -> int:
        """How much one person can change a count: the rows they may contribute."""
        return self.max_rows

    @property
    def sum_sensitivity(self) -> float:
        """How much one person can change a sum of clamped values."""
        return self.max_rows * max(abs(self.lower), abs(self.upper))


@dataclass(frozen=True, slots=True)
class Privacy:
    """The privacy loss one query may cause: a mechanism, epsilon, and delta for Gaussian."""

    epsilon: float
    mechanism: Mechanism = Mechanism.LAPLACE
    delta: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise InvalidInput(f"epsilon must be a positive number, not {self.epsilon!r}")
        if self.mechanism is Mechanism.LAPLACE and self.delta != 0:
            raise InvalidInput("the Laplace mechanism is pure epsilon-DP: delta must be 0")
        if self.mechanism is Mechanism.GAUSSIAN and not 0 < self.delta < 1:
            raise InvalidInput(
                f"the Gaussian mechanism needs a delta between 0 and 1, not {self.delta!r}"
            )

    def split(self, parts: int) -> Privacy:
        """An equal share of this loss, for one of ``parts`` releases (sequential composition)."""
        if parts < 1:
            raise InvalidInput(f"a privacy loss is split into at least one part, not {parts}")
        return Privacy(self.epsilon / parts, self.mechanism, self.delta / parts)


@dataclass(frozen=True, slots=True)
class Noise:
    """A calibrated OpenDP measurement for vectors of one kind of value, and what it costs."""

    privacy: Privacy
    sensitivity: float
    scale: float
    integer: bool
    measurement: Any

    def add(self, values: Sequence[float]) -> list[float]:
        """``values`` with noise added (each one; a whole vector costs one ``privacy``)."""
        if not values:
            return []
        if self.integer:
            return [float(v) for v in self.measurement([int(v) for v in values])]
        return [float(v) for v in self.measurement([float(v) for v in values])]

    @property
    def standard_deviation(self) -> float:
        """The noise's standard deviation."""
        if self.privacy.mechanism is Mechanism.LAPLACE:
            return self.scale * math.sqrt(2)
        return self.scale


def _space(integer: bool, mechanism: Mechanism) -> tuple[Any, Any]:
    # Whole numbers as 64-bit integers: a sum of seconds over millions of rows passes 2**31.
    kind: Any = "i64" if integer else float
    atom = dp.atom_domain(T=kind) if integer else dp.atom_domain(T=float, nan=False)
    metric = dp.l1_distance(T=kind) if mechanism is Mechanism.LAPLACE else dp.l2_distance(T=kind)
    return dp.vector_domain(atom), metric


def _measurement(privacy: Privacy, integer: bool, scale: float) -> Any:
    space = _space(integer, privacy.mechanism)
    if privacy.mechanism is Mechanism.LAPLACE:
        return dp.m.make_laplace(*space, scale=scale)
    gaussian = dp.m.make_gaussian(*space, scale=scale)
    return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gaussian), privacy.delta)


@lru_cache(maxsize=256)
def calibrate(privacy: Privacy, sensitivity: float, *, integer: bool) -> Noise:
    """The smallest noise whose privacy loss, by OpenDP's map at ``sensitivity``, is ``privacy``.

    ``integer`` noise (discrete Laplace or Gaussian) is for counts; float noise for sums.
    """
    if not (math.isfinite(sensitivity) and sensitivity >= 0):
        raise InvalidInput(f"sensitivity must be a non-negative number, not {sensitivity!r}")
    if sensitivity == 0:
        sensitivity = 1e-12 if not integer else 1
    d_in: Any = math.ceil(sensitivity) if integer else float(sensitivity)
    d_out: Any = (
        privacy.epsilon
        if privacy.mechanism is Mechanism.LAPLACE
        else (privacy.epsilon, privacy.delta)
    )
    scale = _least_scale(
        lambda s: bool(_measurement(privacy, integer, s).check(d_in, d_out)),
        float(d_in) / privacy.epsilon,
    )
    measurement = _measurement(privacy, integer, scale)
    return Noise(privacy, float(d_in), scale, integer, measurement)


def _least_scale(enough: Callable[[float], bool], near: float) -> float:
    """The smallest noise scale that is ``enough`` (by OpenDP's privacy map), searched near
    ``near`` (sensitivity over epsilon), where the answer lies.

    An unbounded search would try scales so small that OpenDP's map overflows or slows down;
    a scale whose loss OpenDP cannot even state is not enough.
    """

    def safely(scale: float) -> bool:
        try:
            return enough(scale)
        except dp.OpenDPException:
            return False

    try:
        return float(dp.binary_search(safely, bounds=(near / 1_000, near * 1_000), T=float))
    except ValueError:  # pragma: no cover - the answer lies within those bounds
        return float(dp.binary_search(safely, T=float))


# -- counts, sums and means ------------------------------------------------------------------------


def noisy_counts(counts: Sequence[int], bounds: Bounds, privacy: Privacy) -> list[int]:
    """Bounded counts (one per group) with integer noise; the vector costs ``privacy`` once."""
    noise = calibrate(privacy, bounds.count_sensitivity, integer=True)
    return [int(v) for v in noise.add([int(c) for c in counts])]


def noisy_sums(sums: Sequence[float], bounds: Bounds, privacy: Privacy) -> list[float]:
    """Sums of clamped values (one per group) with noise; the vector costs ``privacy`` once."""
    noise = calibrate(privacy, bounds.sum_sensitivity, integer=False)
    return noise.add([float(s) for s in sums])


def noisy_whole_sums(sums: Sequence[int], bounds: Bounds, privacy: Privacy) -> list[int]:
    """Sums of whole numbers (an integer column's, unclamped) with integer noise, discrete Laplace
    or Gaussian at the sum's sensitivity rounded up: exact integers, and quicker to draw than
    float noise; the vector costs ``privacy`` once."""
    noise = calibrate(privacy, bounds.sum_sensitivity, integer=True)
    return [int(v) for v in noise.add([int(s) for s in sums])]


def noisy_means(
    sums: Sequence[float], counts: Sequence[int], bounds: Bounds, privacy: Privacy
) -> list[float | None]:
    """Means as a noisy sum over a noisy count, each spending half of ``privacy``.

    A group whose noisy count is below one has no mean to speak of (``None``); a mean is clamped
    into the bounds, where every true mean lies.
    """
    half = privacy.split(2)
    noisy_s = noisy_sums(sums, bounds, half)
    noisy_c = noisy_counts(counts, bounds, half)
    out: list[float | None] = []
    for s, c in zip(noisy_s, noisy_c, strict=True):
        out.append(None if c < 1 else min(max(s / c, bounds.lower), bounds.upper))
    return out


def noisy_count(count: int, bounds: Bounds, privacy: Privacy) -> int:
    """One bounded count with noise."""
    return noisy_counts([count], bounds, privacy)[0]


def noisy_sum(total: float, bounds: Bounds, privacy: Privacy) -> float:
    """One bounded sum with noise."""
    return noisy_sums([total], bounds, privacy)[0]


def noisy_mean(total: float, count: int, bounds: Bounds, privacy: Privacy) -> float | None:
    """One mean (noisy sum over noisy count) with noise."""
    return noisy_means([total], [count], bounds, privacy)[0]


# -- choosing which groups to show ----------------------------------------------------------------

_EACH_GROUP = "each person counted once in each group they are in"
"""How a group's people are counted unless the caller says otherwise."""

_MOST = 2**30
"""The largest threshold searched for, and the cap on a count given to OpenDP (32-bit integers)."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which groups of a grouped query may be shown: OpenDP's noisy threshold on people counts.

    Each group's count of people (``counted`` says how they are counted) gets noise (discrete
    Laplace or Gaussian of ``scale``), and the group is shown only if its noisy count reaches
    ``threshold`` (Korolova, Kenthapadi, Mishra and Ntoulas, *Releasing Search Queries and Clicks
    Privately*, WWW 2009; Wilson et al., *Differentially Private SQL with Bounded User
    Contribution*, PoPETs 2020). One person counts in at most ``groups`` groups, once in each, so
    whether any group appears at all is (``epsilon``, ``delta``)-DP, by OpenDP's own privacy map:
    the delta is the chance that a group only that person's presence creates reaches the
    threshold.
    """

    epsilon: float
    delta: float
    mechanism: Mechanism
    groups: int
    """How many groups one person can be counted in (the L0 and L1 bound on the counts)."""
    scale: float
    threshold: int
    measurement: Any
    counted: str = _EACH_GROUP
    """What a group's count of people counts: how each person is counted, and in how many groups."""

    def keep(self, counts: Sequence[int]) -> list[bool]:
        """Which of ``counts`` (one per group: its distinct people) reach the threshold."""
        if not counts:
            return []
        # Groups are keyed by their position: the mechanism treats every key alike, so this is
        # the same mechanism as keyed by the groups themselves. Capping a count far above any
        # threshold changes no one's influence on it.
        shown = self.measurement({i: min(max(int(c), 0), _MOST) for i, c in enumerate(counts)})
        return [i in shown for i in range(len(counts))]

    @property
    def standard_deviation(self) -> float:
        """The noise's standard deviation (about that of its continuous counterpart)."""
        if self.mechanism is Mechanism.LAPLACE:
            return self.scale * math.sqrt(2)
        return self.scale


def _threshold_measurement(mechanism: Mechanism, scale: float, threshold: int) -> Any:
    domain = dp.map_domain(dp.atom_domain(T=int), dp.atom_domain(T=int))
    if mechanism is Mechanism.LAPLACE:
        metric = dp.l01inf_distance(dp.absolute_distance(T=int))
        return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)
    metric = dp.l02inf_distance(dp.absolute_distance(T=int))
    return dp.m.make_gaussian_threshold(domain, metric, scale=scale, threshold=threshold)


def _selection_measurement(mechanism: Mechanism, scale: float, threshold: int, delta: float) -> Any:
    """The threshold mechanism as (epsilon, delta)-DP; the Gaussian's zCDP converted at ``delta``
    (its total delta, the threshold's included)."""
    measurement = _threshold_measurement(mechanism, scale, threshold)
    if mechanism is Mechanism.LAPLACE:
        return measurement
    return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(measurement), delta)


@lru_cache(maxsize=256)
def calibrate_selection(
    epsilon: float,
    delta: float,
    mechanism: Mechanism,
    *,
    groups: int,
    minimum: int,
    counted: str = _EACH_GROUP,
) -> Selection:
    """The least noise, then the lowest threshold (at least ``minimum``), whose privacy loss by
    OpenDP's map is within ``epsilon`` and ``delta`` when one person counts, by one, in at most
    ``groups`` groups (``counted`` says how, in the selection's words).

    For Laplace noise the threshold is about ``1 + (groups / epsilon) * ln(groups / (2 * delta))``:
    with each person counted in one group, ``1 + ln(1 / (2 * delta)) / epsilon``. Gaussian noise
    gives half of ``delta`` to the threshold and half to its conversion from zCDP.
    """
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInput(f"epsilon must be a positive number, not {epsilon!r}")
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise InvalidInput(
            f"choosing which groups to show needs a delta between 0 and 1, not {delta!r}"
        )
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise InvalidInput(f"a person is in at least one group, not {groups!r}")
    # Removing one person takes at most 1 from each of at most ``groups`` counts.
    d_in = (groups, groups, 1)
    # The threshold's own delta: all of it under Laplace, half of it under Gaussian noise.
    tail = delta if mechanism is Mechanism.LAPLACE else delta / 2

    def loss(scale: float, threshold: int, total: float = delta) -> tuple[float, float]:
        measured = _selection_measurement(mechanism, scale, threshold, total)
        found = measured.map(d_in)
        return float(found[0]), float(found[1])

    def tail_delta(scale: float, threshold: int) -> float:
        found = _threshold_measurement(mechanism, scale, threshold).map(d_in)
        return float(found[1])

    # Far above any count, the threshold costs no delta: the noise alone sets the epsilon (the
    # Gaussian's at the half of delta left to its conversion once the threshold has its half).
    rest = delta - tail if mechanism is Mechanism.GAUSSIAN else delta

    width = groups if mechanism is Mechanism.LAPLACE else math.sqrt(groups)
    scale = _least_scale(lambda s: loss(s, _MOST, rest)[0] <= epsilon, width / epsilon)
    if tail_delta(scale, _MOST) > tail:
        raise InvalidInput(
            f"epsilon {epsilon} is too small to choose groups with delta {delta}: the threshold "
            f"would be above {_MOST}"
        )
    lowest = 1
    if tail_delta(scale, 1) > tail:
        lowest = int(
            dp.binary_search(lambda t: tail_delta(scale, int(t)) <= tail, bounds=(1, _MOST), T=int)
        )
    threshold = max(lowest, minimum)
    spent = loss(scale, threshold)
    if spent[0] > epsilon or spent[1] > delta:  # pragma: no cover - the searches ensure it
        raise InvalidInput(f"no threshold keeps the selection within {epsilon}, {delta}: {spent}")
    measurement = _selection_measurement(mechanism, scale, threshold, delta)
    return Selection(epsilon, delta, mechanism, groups, scale, threshold, measurement, counted)


# -- bounding in SQL -------------------------------------------------------------------------------


def bounded_rows_sql(
    source: str,
    person: str,
    bounds: Bounds,
    *,
    values: Sequence[str] = (),
    columns: Sequence[str] = (),
) -> str:
    """A DuckDB query over ``source`` keeping at most ``bounds.max_rows`` random rows per person,
    with each of ``values`` clamped into the bounds; ``columns`` pass through unchanged.

    ``source`` is a table name or a parenthesised query; names must already be quoted where
    needed (they come from the clean room's checked rules, never from a person's input).
    """
    kept = [*columns, *(_clamp(v, bounds) + f" AS {v}" for v in values)]
    return (
        f"SELECT {', '.join(kept) or '1 AS one'} FROM ("  # noqa: S608 - names from checked rules
        f"SELECT *, row_number() OVER (PARTITION BY {person} ORDER BY _accord_r) AS _accord_n "
        f"FROM (SELECT *, random() AS _accord_r FROM {source})) "
        f"WHERE _accord_n <= {int(bounds.max_rows)}"
    )


def _clamp(column: str, bounds: Bounds) -> str:
    return f"least(greatest(CAST({column} AS DOUBLE), {bounds.lower!r}), {bounds.upper!r})"
