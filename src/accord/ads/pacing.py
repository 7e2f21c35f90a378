"""Budgets and pacing: how much each campaign may spend, and how it spreads through the day.

**Limits** (days are UTC days; amounts in micros). Each day a campaign gets an *allowance*:

    allowance = min( 1.75 × daily budget,
                     daily budget × days it has run this calendar month - spent this month,
                     lifetime budget - spent in its life )

so no day spends more than 1.75 times the daily budget (Meta's published rule: "up to 75% more
than your daily budget on some days", Meta Business Help Centre, "About ad set budgets"); no
calendar month spends more than the daily budget times the days the campaign ran in it (the
daily budget is an average over the month, as Google Ads' "up to 2 times your average daily
budget ... but not more than your monthly charging limit" reads; Google Ads Help, "About average
daily budgets"), so a day spends beyond its daily budget only to make up for earlier days of the
month that spent less; and the lifetime budget is never exceeded. A campaign takes part in an
auction only while what is left of its allowance and of its lifetime budget covers its bid per
billable event: the most one event can cost. A charge the limits could not cover (a click that
arrives after the budget was spent) is cut to what is left, and what was cut is counted as
*over-delivery*: service given for free, never billed.

**Pacing** spreads the allowance through the day by probabilistic throttling (Agarwal, Ghosh,
Wei and Zhang, "Budget Pacing for Targeted Online Advertisements at LinkedIn", KDD 2014): each
campaign takes part in each auction it is eligible for with probability ``rate`` (its
pass-through rate). The day is cut into windows; at the end of each window the campaign's spend so
far is compared with its plan, the allowance times the share of the day's traffic forecast to have
come by then (its traffic curve), run a little ahead (``lead``) so that the allowance is planned
to be spent shortly before the day ends; ahead of plan, the rate is multiplied by ``1 - step``,
behind it by ``1 + step`` (``1 + 2 step`` when behind by more than a tenth of the allowance),
within ``[floor, 1]``. The rate carries over from one day to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import numpy.typing as npt

from accord.ads.model import MAX_MONEY
from accord.consent import utc
from accord.errors import InvalidInput

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

DAILY_CAP_NUMERATOR, DAILY_CAP_DENOMINATOR = 7, 4
"""No day spends more than 7/4 (1.75 times) the daily budget."""
NO_LIMIT = MAX_MONEY
"""The lifetime budget of a campaign that has none."""


def day_cap(daily_budget: int) -> int:
    """The most one day may spend: 1.75 times the daily budget, rounded down to a micro."""
    return daily_budget * DAILY_CAP_NUMERATOR // DAILY_CAP_DENOMINATOR


@dataclass(frozen=True, slots=True)
class PacingSettings:
    """How finely the day is cut, and how fast pass-through rates move."""

    windows: int = 96
    """Windows a day is cut into (96: a quarter of an hour each)."""
    step: float = 0.2
    """How much a rate moves at the end of a window: times ``1 - step`` or ``1 + step``."""
    floor: float = 0.005
    """The lowest pass-through rate."""
    start: float = 0.2
    """A new campaign's rate."""
    lead: float = 0.2
    """How far the plan runs ahead of the traffic: the allowance is planned to be spent when
    ``1 / (1 + lead)`` of the day's traffic has come, so a day that falls behind late can still
    catch up before midnight."""

    def __post_init__(self) -> None:
        if not 1 <= self.windows <= 1440 or 1440 % self.windows:
            raise InvalidInput(f"windows must divide the day's 1440 minutes, not {self.windows}")
        if not 0 < self.step < 1:
            raise InvalidInput(f"step must be between 0 and 1, not {self.step}")
        if not 0 < self.floor <= self.start <= 1:
            raise InvalidInput("rates must satisfy 0 < floor <= start <= 1")
        if not 0 <= self.lead <= 1:
            raise InvalidInput(f"lead must be from 0 to 1, not {self.lead}")


def flat_curve(windows: int) -> Floats:
    """A traffic curve with the same traffic in every window (cumulative shares)."""
    return np.arange(1, windows + 1, dtype=np.float64) / windows


def cumulative(shares: Sequence[float] | Floats) -> Floats:
    """Cumulative shares (ending at exactly 1) from the traffic of each window."""
    traffic = np.asarray(shares, dtype=np.float64)
    if traffic.ndim not in (1, 2) or (traffic < 0).any():
        raise InvalidInput("a traffic curve is a list of non-negative amounts per window")
    total = traffic.sum(axis=-1, keepdims=True)
    if (total <= 0).any():
        raise InvalidInput("a traffic curve needs some traffic")
    out: Floats = np.cumsum(traffic, axis=-1) / total
    out[..., -1] = 1.0
    return out


class Pacer:
    """The budgets of a set of campaigns (in campaign index order) and their pass-through rates.

    ``curves`` are cumulative traffic shares per window, one row per campaign or one row for all;
    ``first_days`` the day each campaign first runs (what its month's allowance counts from).
    """

    def __init__(
        self,
        daily: Ints,
        lifetime: Ints,
        max_charge: Ints,
        first_days: Sequence[date],
        *,
        curves: Floats | None = None,
        settings: PacingSettings | None = None,
    ) -> None:
        self.settings = s = settings or PacingSettings()
        n = len(daily)
        self.daily = np.asarray(daily, dtype=np.int64)
        self.lifetime = np.asarray(lifetime, dtype=np.int64)
        self.max_charge = np.asarray(max_charge, dtype=np.int64)
        if not len(self.lifetime) == len(self.max_charge) == len(first_days) == n:
            raise InvalidInput("every campaign needs a daily and lifetime budget, a bid, a start")
        self.cap = self.daily * DAILY_CAP_NUMERATOR // DAILY_CAP_DENOMINATOR
        self.first_days = np.array([d.toordinal() for d in first_days], dtype=np.int64)
        curve = flat_curve(s.windows) if curves is None else np.asarray(curves, np.float64)
        if curve.shape[-1] != s.windows:
            raise InvalidInput(f"a traffic curve needs {s.windows} windows, not {curve.shape[-1]}")
        self.curves = np.broadcast_to(curve, (n, s.windows)) if curve.ndim == 1 else curve
        self.rate = np.full(n, s.start, dtype=np.float64)
        self.spent_today = np.zeros(n, dtype=np.int64)
        self.spent_month = np.zeros(n, dtype=np.int64)
        """Spent this calendar month before today."""
        self.spent_total = np.zeros(n, dtype=np.int64)
        self.allowance = np.zeros(n, dtype=np.int64)
        self.over_delivered = np.zeros(n, dtype=np.int64)
        """Micros of charges cut because no budget was left to cover them."""
        self.funded: Mask = np.zeros(n, dtype=bool)
        """Whether what is left today and in the campaign's life covers one more event."""
        self.day: date | None = None
        self.window = 0
        self._window_minutes = 1440 // s.windows

    # -- time --------------------------------------------------------------------------------------

    def advance(self, at: datetime) -> bool:
        """Move to ``at`` (never backwards): close windows and days passed. True if the day
        changed (the caller resets what it counts per day)."""
        at = utc(at)
        today = at.date()
        window = (at.hour * 60 + at.minute) // self._window_minutes
        if self.day is not None and today < self.day:
            raise InvalidInput(f"time went backwards: {today} after {self.day}")
        if today != self.day:
            if self.day is not None:
                self._end_window(self.settings.windows - 1)
            self._start_day(today)
            self.window = 0
            if window:
                self._end_window(window - 1)
                self.window = window
            return True
        if window != self.window:
            self._end_window(window - 1)
            self.window = window
        return False

    def _start_day(self, today: date) -> None:
        if self.day is not None:
            if (today.year, today.month) == (self.day.year, self.day.month):
                self.spent_month += self.spent_today
            else:
                self.spent_month[:] = 0
        self.spent_today[:] = 0
        self.day = today
        self.refresh()

    def refresh(self) -> None:
        """Recompute today's allowances and who is funded from what has been spent (after the
        spend was set from records kept elsewhere)."""
        if self.day is None:
            return
        month_start = self.day.replace(day=1).toordinal()
        days_run = self.day.toordinal() - np.maximum(self.first_days, month_start) + 1
        days_run = np.maximum(days_run, 0)
        allowance = np.minimum(self.cap, self.daily * days_run - self.spent_month)
        # The day's allowance, as it was at the day's start: what the campaign's life had left
        # before today (today's spend is taken from the allowance, not from it twice).
        allowance = np.minimum(allowance, self.lifetime - (self.spent_total - self.spent_today))
        self.allowance = np.maximum(allowance, 0)
        self._fund()

    def _end_window(self, window: int) -> None:
        """Move each campaign's rate by its spend against plan at the end of ``window``."""
        s = self.settings
        plan = self.allowance * np.minimum(1.0, self.curves[:, window] * (1 + s.lead))
        ahead = self.spent_today > plan
        # Far behind (more than a tenth of the day's allowance): twice the step up.
        far = plan - self.spent_today > self.allowance / 10
        up = np.where(far, 1 + 2 * s.step, 1 + s.step)
        self.rate = np.where(ahead, self.rate * (1 - s.step), self.rate * up)
        np.clip(self.rate, s.floor, 1.0, out=self.rate)

    # -- money ------------------------------------------------------------------------------------

    def _fund(self) -> None:
        room = np.minimum(self.allowance - self.spent_today, self.lifetime - self.spent_total)
        self.funded = room >= self.max_charge

    def room(self, i: int) -> int:
        """What campaign ``i`` may still spend today."""
        return min(
            self.allowance.item(i) - self.spent_today.item(i),
            self.lifetime.item(i) - self.spent_total.item(i),
        )

    def charge(self, i: int, micros: int) -> int:
        """Charge campaign ``i`` up to ``micros``: what the limits let be charged (the rest is
        counted as over-delivery). Returns the amount charged."""
        if micros < 0:
            raise InvalidInput(f"a charge cannot be negative: {micros}")
        # Python integers read once (item) and written back: no NumPy scalar arithmetic.
        today, total = self.spent_today.item(i), self.spent_total.item(i)
        room = self.allowance.item(i) - today
        life = self.lifetime.item(i) - total
        room = life if life < room else room
        charged = micros
        if micros > room:
            charged = room if room > 0 else 0
            self.over_delivered[i] += micros - charged
        self.spent_today[i] = today + charged
        self.spent_total[i] = total + charged
        if room - charged < self.max_charge.item(i):
            self.funded[i] = False
        return charged


__all__ = [
    "DAILY_CAP_DENOMINATOR",
    "DAILY_CAP_NUMERATOR",
    "NO_LIMIT",
    "Pacer",
    "PacingSettings",
    "cumulative",
    "day_cap",
    "flat_curve",
]
