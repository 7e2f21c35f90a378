"""Differentially private aggregates at the door, for a clause with a privacy budget.

A clause that sets ``privacy_budget`` answers an aggregate only with differential privacy; one
without keeps its exact counts of groups of at least ``min_group_size`` people. A private answer
is made in four steps, with the clean room's own mechanisms (:mod:`accord.pets.dp`):

1. **Bounding**, in the provider's SQL (:meth:`accord.sources.Source.bounded_aggregate`): each
   person's rows are numbered in random order and only the first ``max_rows`` are counted, so one
   person moves the counts of all the groups together by at most ``max_rows`` (the sensitivity).
2. **Choosing the groups** that show by a noisy count of each group's people against a threshold
   of at least the clause's ``min_group_size`` (OpenDP's threshold mechanism; Korolova et al.,
   *Releasing Search Queries and Clicks Privately*, WWW 2009; Wilson et al., *Differentially
   Private SQL with Bounded User Contribution*, PoPETs 2020). Each person is counted in one group
   only (the group of the first of their rows kept), so a group's presence or absence says
   nothing exact about anyone; the chance that a group only one person makes shows is the delta.
3. **Spending**, before anything leaves: the answer's epsilon and delta from the budget of every
   person whose rows it reads (party: the provider holding them), and from the clause's own
   ``privacy_budget``, a cap on what its answers spend per person in all
   (:class:`accord.pets.budget.Charge`). Either short, and the answer is refused whole, the
   refusal in the ledger.
4. **Noise** on every count: OpenDP's discrete Laplace (Ghosh, Roughgarden and Sundararajan 2012)
   at sensitivity ``max_rows``, which adds whole numbers; a count below zero is shown as zero
   (post-processing, which costs nothing).

The answer's epsilon is its whole loss: an even share to the choice of groups and to each
measure (sequential composition: Dwork and Roth, *The Algorithmic Foundations of Differential
Privacy*, 2014, Theorem 3.16); the delta is the choice's. The exchange may ask for an epsilon
(and a ``max_rows``); otherwise an answer spends :data:`DEFAULT_SHARE` of the clause's budget.

Measures: ``count`` and ``count(field)`` change by at most ``max_rows`` when one person comes or
goes; so does ``count_distinct(field)`` over the bounded rows, since a person's ``max_rows`` rows
hold at most that many distinct values, in all the groups together. A ``sum`` is refused: the
clause bounds no field's values, and without bounds one person could move a sum without limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accord.agreements import Clause
from accord.errors import InvalidInput
from accord.pets.mechanisms import Mechanism
from accord.sources import BoundedAggregate

if TYPE_CHECKING:
    from accord.pets import dp

DEFAULT_SHARE = 0.1
"""The part of a clause's ``privacy_budget`` an answer spends when the exchange asks for none:
ten answers' worth, per person."""
DEFAULT_MAX_ROWS = 5
"""The rows each person may contribute to an answer when the exchange does not say."""
MOST_ROWS = 1_000
"""The most rows a person may contribute to one answer (the noise grows with it)."""
DELTA = 1e-9
"""Each answer's delta: the chance that a group only one person makes is shown. Charged to each
person's delta budget (10**-6 by default: a thousand answers)."""
MECHANISM = Mechanism.LAPLACE
COUNTED = "each person counted once, in the group of the first of their rows kept"
"""How a group's people are counted for the choice of the groups that show."""

_MEASURE_KINDS = ("count", "count_distinct")


@dataclass(frozen=True, slots=True)
class Plan:
    """How one private answer is made: its loss, its bounding, and its calibrated noise."""

    epsilon: float
    delta: float
    max_rows: int
    share: float
    """Each part's epsilon: the choice of groups, and each measure."""
    selection: dp.Selection
    counts: dp.Noise

    @property
    def mechanism(self) -> str:
        """The noise's name, as budgets and the ledger record it."""
        return MECHANISM.value

    def describe(self, minimum: int, measures: int) -> str:
        """What was done to the figures, in a sentence for the ledger and the caller."""
        return (
            f"noised with differential privacy, epsilon {_short(self.epsilon)} and delta "
            f"{_short(self.delta)} per person: at most {self.max_rows} rows per person; a "
            f"group shows only where the count of its people ({COUNTED}) plus {self.mechanism} "
            f"noise (scale {self.selection.scale:.3g}) reaches {self.selection.threshold} (at "
            f"least the clause's {minimum}), for epsilon {_short(self.share)}; each of "
            f"{measures} {'count' if measures == 1 else 'counts'} with discrete {self.mechanism} "
            f"noise (scale {self.counts.scale:.3g}) for epsilon {_short(self.share)}"
        )


def plan(
    clause: Clause,
    measures: Mapping[str, str],
    *,
    epsilon: float | None,
    max_rows: int | None,
) -> Plan:
    """The plan of a private answer under ``clause`` (which sets ``privacy_budget``), its noise
    calibrated before any row is read or any budget spent; refused if a measure cannot be made
    private or the loss asked for is not a loss."""
    budget = clause.privacy_budget
    if budget is None:  # pragma: no cover - only called for a clause with a budget
        raise InvalidInput(f"clause {clause.id} sets no privacy budget")
    if clause.min_group_size is None:  # pragma: no cover - agreements require it of aggregates
        raise InvalidInput(f"clause {clause.id} is aggregate but sets no minimum")
    summed = sorted(name for name, spec in measures.items() if not _countable(spec))
    if summed:
        raise InvalidInput(
            f"clause {clause.id} has a privacy budget, so its aggregates are differentially "
            f"private, and measures {', '.join(summed)} cannot be: a sum's noise is set by "
            "bounds on the values summed, and the clause declares none; ask for counts "
            "(count, count(field), count_distinct(field))"
        )
    chosen = budget * DEFAULT_SHARE if epsilon is None else epsilon
    if isinstance(chosen, bool) or not isinstance(chosen, int | float):
        raise InvalidInput(f"epsilon must be a number, not {chosen!r}")
    if not (math.isfinite(chosen) and chosen > 0):
        raise InvalidInput(f"epsilon must be a positive number, not {chosen!r}")
    rows = DEFAULT_MAX_ROWS if max_rows is None else max_rows
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= MOST_ROWS:
        raise InvalidInput(f"max_rows must be a whole number from 1 to {MOST_ROWS}, not {rows!r}")
    from accord.pets import dp  # noqa: PLC0415 - OpenDP loads only when an answer is noised

    share = _share(float(chosen), len(measures) + 1)
    selection = dp.calibrate_selection(
        share, DELTA, MECHANISM, groups=1, minimum=clause.min_group_size, counted=COUNTED
    )
    counts = dp.calibrate(
        dp.Privacy(share, MECHANISM), dp.Bounds(rows).count_sensitivity, integer=True
    )
    return Plan(float(chosen), DELTA, rows, share, selection, counts)


def noised(exact: BoundedAggregate, keys: int, p: Plan) -> list[tuple[Any, ...]]:
    """The rows of a private answer: the groups whose noisy count of people reaches the
    threshold, each count noised. ``keys`` is how many leading columns are the groups' keys."""
    shown = [r for r, kept in zip(exact.rows, p.selection.keep(exact.people), strict=True) if kept]
    columns: list[Sequence[Any]] = [[r[i] for r in shown] for i in range(len(exact.columns))]
    for i in range(keys, len(exact.columns)):
        # Post-processing keeps the guarantee: a count below zero says nothing.
        columns[i] = [max(0, int(v)) for v in p.counts.add([int(v or 0) for v in columns[i]])]
    return [tuple(column[n] for column in columns) for n in range(len(shown))]


def _countable(spec: str) -> bool:
    kind = spec.replace(" ", "").split("(", 1)[0]
    return kind in _MEASURE_KINDS


def _share(epsilon: float, parts: int) -> float:
    """An even share of ``epsilon`` over ``parts``, rounded down so the parts never add up to
    more than the whole."""
    share = epsilon / parts
    while share * parts > epsilon:
        share = math.nextafter(share, 0)
    return share


def _short(amount: float) -> str:
    return f"{amount:.4g}"
