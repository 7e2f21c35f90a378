"""Differential privacy: the noise is the mechanism's, calibrated to the epsilon asked for.

OpenDP draws from a secure random source that cannot be seeded, so the distribution tests are
statistical: a one-sample Kolmogorov–Smirnov test of many draws against the mechanism's CDF,
rejected only when sqrt(n)·D exceeds 2.7. Under the right distribution that happens with
probability about 2·exp(-2·2.7²) ≈ 1e-6 (Kolmogorov's limit; for the discrete mechanisms the test
is conservative, so rarer still), while a scale 30% off gives a statistic near 6.8 and is caught
every time at these sample sizes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import InvalidInput
from accord.pets import dp

pytestmark = pytest.mark.unit

SAMPLES = 20_000
CRITICAL = 2.7  # sqrt(n)·D above this: a false failure about once in a million runs


def ks_statistic(samples: list[float], cdf: Callable[[float], float]) -> float:
    """sqrt(n) times the largest gap between the empirical CDF of ``samples`` and ``cdf``."""
    xs = sorted(samples)
    n = len(xs)
    gap = 0.0
    for i, x in enumerate(xs):
        f = cdf(x)
        gap = max(gap, abs((i + 1) / n - f), abs(f - i / n))
    return math.sqrt(n) * gap


def discrete_ks_statistic(samples: list[int], cdf: Callable[[int], float]) -> float:
    """sqrt(n) times the largest gap between empirical and true CDF at the integers drawn."""
    counts = Counter(samples)
    n = len(samples)
    seen = 0
    gap = 0.0
    for k in sorted(counts):
        seen += counts[k]
        gap = max(gap, abs(seen / n - cdf(k)), abs((seen - counts[k]) / n - cdf(k - 1)))
    return math.sqrt(n) * gap


def laplace_cdf(scale: float) -> Callable[[float], float]:
    def cdf(x: float) -> float:
        if x < 0:
            return 0.5 * math.exp(x / scale)
        return 1 - 0.5 * math.exp(-x / scale)

    return cdf


def normal_cdf(sigma: float) -> Callable[[float], float]:
    return lambda x: 0.5 * (1 + math.erf(x / (sigma * math.sqrt(2))))


def discrete_laplace_cdf(scale: float) -> Callable[[int], float]:
    """P(X <= k) for P(X = k) proportional to exp(-|k| / scale) (the geometric mechanism)."""
    q = math.exp(-1 / scale)

    def cdf(k: int) -> float:
        if k < 0:
            return q ** (-k) / (1 + q)
        return 1 - q ** (k + 1) / (1 + q)

    return cdf


def draws(noise: dp.Noise, n: int = SAMPLES) -> list[float]:
    zeros: list[float] = [0] * n if noise.integer else [0.0] * n
    return noise.add(zeros)


# -- calibration -----------------------------------------------------------------------------------


def test_laplace_scale_is_sensitivity_over_epsilon() -> None:
    noise = dp.calibrate(dp.Privacy(0.5), 3.0, integer=False)
    assert noise.scale == pytest.approx(6.0, rel=1e-6)
    # OpenDP's own privacy map at this sensitivity is within the epsilon asked for.
    assert noise.measurement.map(3.0) <= 0.5 + 1e-9


def test_gaussian_is_calibrated_to_epsilon_and_delta() -> None:
    privacy = dp.Privacy(1.0, dp.Mechanism.GAUSSIAN, 1e-9)
    noise = dp.calibrate(privacy, 2.0, integer=False)
    epsilon, delta = noise.measurement.map(2.0)
    assert epsilon <= 1.0 + 1e-9
    assert delta == pytest.approx(1e-9)
    # A smaller scale would break the promise: the search found the smallest that keeps it.
    tighter = dp.calibrate(dp.Privacy(1.1, dp.Mechanism.GAUSSIAN, 1e-9), 2.0, integer=False)
    assert tighter.scale < noise.scale


def test_more_epsilon_means_less_noise() -> None:
    scales = [dp.calibrate(dp.Privacy(e), 1.0, integer=True).scale for e in (0.1, 1.0, 10.0)]
    assert scales[0] > scales[1] > scales[2]


# -- the noise distributions -----------------------------------------------------------------------


def test_laplace_noise_on_sums_follows_the_laplace_distribution() -> None:
    noise = dp.calibrate(dp.Privacy(1.0), 2.0, integer=False)
    assert ks_statistic(draws(noise), laplace_cdf(noise.scale)) < CRITICAL


def test_the_test_catches_a_scale_thirty_percent_off() -> None:
    noise = dp.calibrate(dp.Privacy(1.0), 2.0, integer=False)
    assert ks_statistic(draws(noise), laplace_cdf(noise.scale * 1.3)) > CRITICAL


def test_laplace_noise_on_counts_follows_the_discrete_laplace_distribution() -> None:
    noise = dp.calibrate(dp.Privacy(0.5), 1, integer=True)
    samples = [int(v) for v in draws(noise)]
    assert all(isinstance(v, int) for v in samples)
    assert discrete_ks_statistic(samples, discrete_laplace_cdf(noise.scale)) < CRITICAL
    assert discrete_ks_statistic(samples, discrete_laplace_cdf(noise.scale * 1.3)) > CRITICAL


def test_gaussian_noise_on_sums_follows_the_normal_distribution() -> None:
    noise = dp.calibrate(dp.Privacy(1.0, dp.Mechanism.GAUSSIAN, 1e-6), 1.0, integer=False)
    assert ks_statistic(draws(noise), normal_cdf(noise.scale)) < CRITICAL
    assert ks_statistic(draws(noise), normal_cdf(noise.scale * 1.3)) > CRITICAL


def test_noise_is_centred_on_the_true_count() -> None:
    bounds = dp.Bounds(max_rows=2)
    noisy = dp.noisy_counts([1_000] * 4_000, bounds, dp.Privacy(1.0))
    mean = sum(noisy) / len(noisy)
    # The mean of 4,000 draws of scale 2 noise is within 0.5 of the truth but for 1e-6 chance.
    assert abs(mean - 1_000) < 0.5


def test_whole_sums_get_integer_noise_beyond_32_bits() -> None:
    """An integer column's sums get discrete noise of scale sensitivity / epsilon (2 × 10 / 1),
    as 64-bit integers: a sum of seconds over millions of rows passes 2**31."""
    bounds = dp.Bounds(max_rows=2, lower=0, upper=10)
    truth = 3 * 2**31
    noisy = dp.noisy_whole_sums([truth] * 4_000, bounds, dp.Privacy(1.0))
    assert all(isinstance(v, int) for v in noisy)
    assert dp.calibrate(dp.Privacy(1.0), bounds.sum_sensitivity, integer=True).scale == (
        pytest.approx(20, rel=1e-6)
    )
    # The mean of 4,000 draws of scale 20 noise (sd 28) is within 3 of the truth but for 1e-6.
    assert abs(sum(noisy) / len(noisy) - truth) < 3
    assert len(set(noisy)) > 100  # noise, not a constant


# -- counts, sums and means ------------------------------------------------------------------------


def test_a_mean_lies_within_the_bounds() -> None:
    bounds = dp.Bounds(max_rows=1, lower=0, upper=10)
    means = dp.noisy_means([5.0, 50.0, 0.0], [1, 10, 0], bounds, dp.Privacy(0.1))
    for m in means:
        assert m is None or 0 <= m <= 10


def test_a_large_mean_is_accurate() -> None:
    bounds = dp.Bounds(max_rows=1, lower=0, upper=10)
    mean = dp.noisy_mean(5.0 * 100_000, 100_000, bounds, dp.Privacy(1.0))
    assert mean is not None
    assert abs(mean - 5.0) < 0.05


def test_sensitivities_follow_the_bounds() -> None:
    bounds = dp.Bounds(max_rows=3, lower=-2, upper=5)
    assert bounds.count_sensitivity == 3
    assert bounds.sum_sensitivity == 15


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: dp.Bounds(max_rows=0), "max_rows"),  # every person contributes something
        (lambda: dp.Bounds(lower=2, upper=1), "above"),  # bounds the wrong way round
        (lambda: dp.Bounds(upper=math.inf), "finite"),  # unbounded values have no sensitivity
        (lambda: dp.Privacy(0), "epsilon"),  # no privacy loss is no answer
        (lambda: dp.Privacy(1.0, delta=1e-9), "delta must be 0"),  # Laplace is pure DP
        (lambda: dp.Privacy(1.0, dp.Mechanism.GAUSSIAN), "delta"),  # Gaussian needs a delta
        (lambda: dp.calibrate(dp.Privacy(1.0), -1.0, integer=False), "sensitivity"),
    ],
)
def test_bad_parameters_are_refused(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make()


def test_splitting_a_privacy_loss_composes_back() -> None:
    whole = dp.Privacy(1.0, dp.Mechanism.GAUSSIAN, 1e-8)
    part = whole.split(4)
    assert part.epsilon * 4 == pytest.approx(1.0)
    assert part.delta * 4 == pytest.approx(1e-8)


# -- contribution bounding in SQL ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 6), st.floats(-1e6, 1e6, allow_nan=False)), max_size=200
    ),
    max_rows=st.integers(1, 5),
    lower=st.floats(-100, 0),
    width=st.floats(0, 100),
)
def test_bounding_keeps_at_most_max_rows_per_person_with_values_clamped(
    rows: list[tuple[int, float]], max_rows: int, lower: float, width: float
) -> None:
    bounds = dp.Bounds(max_rows=max_rows, lower=lower, upper=lower + width)
    db = duckdb.connect()
    db.execute("CREATE TABLE t (person INTEGER, v DOUBLE)")
    for person, value in rows:
        db.execute("INSERT INTO t VALUES (?, ?)", [person, value])
    sql = dp.bounded_rows_sql("t", "person", bounds, values=["v"], columns=["person"])
    kept = db.execute(sql).fetchall()
    per_person = Counter(p for p, _ in kept)
    given_rows = Counter(p for p, _ in rows)
    for person, n in given_rows.items():
        assert per_person[person] == min(n, max_rows)
    assert all(bounds.lower <= v <= bounds.upper for _, v in kept)


# -- choosing which groups to show -----------------------------------------------------------------

GROUPS = 20_000  # groups per draw: one call of OpenDP's threshold mechanism


def discrete_gaussian_at_least_zero(sigma: float) -> float:
    """P(X >= 0) for the discrete Gaussian, P(X = k) proportional to exp(-k² / 2 sigma²)."""
    reach = int(40 * sigma) + 2
    weights = [math.exp(-(k * k) / (2 * sigma * sigma)) for k in range(-reach, reach + 1)]
    return sum(weights[reach:]) / sum(weights)


@pytest.mark.parametrize(
    ("epsilon", "delta", "groups", "minimum"),
    [
        (1.0, 1e-6, 1, 2),  # one group a person: 1 + ln(1/2e-6) ≈ 14.1
        (1 / 3, 1e-8, 20, 50),  # 20 groups a person: 1 + 60·ln(1e9) ≈ 1244
        (0.5, 1e-8, 10, 50),  # 1 + 20·ln(5e8) ≈ 402
        (100.0, 1e-8, 2, 5),  # so little noise that the rule's minimum is the threshold
        (1 / 3, 1e-8, 1, 50),  # each person in one group: 1 + 3·ln(5e7) ≈ 54, not 1244
        (1 / 3, 1e-8, 1, 100),  # ... and never below the rule's minimum
        (1 / 3, 1e-8, 2, 50),  # a join of two tables: 1 + 6·ln(1e8) ≈ 112
    ],
)
def test_the_laplace_threshold_is_the_published_one(
    epsilon: float, delta: float, groups: int, minimum: int
) -> None:
    """OpenDP's map gives Korolova et al.'s threshold at scale k/ε: max(min, 1 + (k/ε)·ln(k/2δ))."""
    selection = dp.calibrate_selection(
        epsilon, delta, dp.Mechanism.LAPLACE, groups=groups, minimum=minimum
    )
    published = max(minimum, 1 + groups / epsilon * math.log(groups / (2 * delta)))
    assert selection.scale == pytest.approx(groups / epsilon, rel=1e-6)
    assert abs(selection.threshold - published) <= 1
    found = selection.measurement.map((groups, groups, 1))
    assert found[0] <= epsilon + 1e-9
    assert found[1] <= delta


@settings(max_examples=25, deadline=None)
@given(
    epsilon=st.floats(0.05, 5.0),
    delta=st.sampled_from([1e-12, 1e-10, 1e-8, 1e-6, 1e-4]),
    minimum=st.integers(2, 300),
)
def test_one_group_a_person_gives_the_published_threshold(
    epsilon: float, delta: float, minimum: int
) -> None:
    """With each person counted in one group: τ = max(min, 1 + (1/ε)·ln(1/(2δ))), within one."""
    selection = dp.calibrate_selection(
        epsilon, delta, dp.Mechanism.LAPLACE, groups=1, minimum=minimum
    )
    published = 1 + math.log(1 / (2 * delta)) / epsilon
    assert selection.threshold >= minimum
    assert abs(selection.threshold - max(minimum, published)) <= 1
    found = selection.measurement.map((1, 1, 1))
    assert found[0] <= epsilon + 1e-9
    assert found[1] <= delta


def test_a_gaussian_selection_keeps_within_its_loss() -> None:
    selection = dp.calibrate_selection(1 / 3, 1e-8, dp.Mechanism.GAUSSIAN, groups=20, minimum=50)
    epsilon, delta = selection.measurement.map((20, 20, 1))
    assert epsilon <= 1 / 3 + 1e-9
    assert delta <= 1e-8
    # Its L2 bound grows as the square root of the groups: a lower threshold than Laplace's.
    laplace = dp.calibrate_selection(1 / 3, 1e-8, dp.Mechanism.LAPLACE, groups=20, minimum=50)
    assert selection.threshold < laplace.threshold


@pytest.mark.parametrize("mechanism", list(dp.Mechanism))
def test_groups_far_above_the_threshold_show_and_far_below_do_not(
    mechanism: dp.Mechanism,
) -> None:
    selection = dp.calibrate_selection(1.0, 1e-6, mechanism, groups=1, minimum=2)
    spread = 40 * selection.standard_deviation  # beyond this, about exp(-28) or far less
    high = selection.threshold + math.ceil(spread)
    assert all(selection.keep([high] * GROUPS))
    # A group of no one shows with probability at most delta (1e-6): of 20,000, expect 0.02.
    assert sum(selection.keep([0] * GROUPS)) <= 2


@pytest.mark.parametrize("mechanism", list(dp.Mechanism))
def test_at_the_threshold_a_group_shows_as_often_as_the_noise_says(
    mechanism: dp.Mechanism,
) -> None:
    """A group whose count is the threshold shows when the noise is at least zero: 1/(1+q) for
    the discrete Laplace (q = exp(-1/scale)), a little over a half for the discrete Gaussian.
    Five standard errors of 20,000 draws: a false failure about once in two million runs."""
    selection = dp.calibrate_selection(1.0, 1e-6, mechanism, groups=1, minimum=2)
    if mechanism is dp.Mechanism.LAPLACE:
        expected = 1 / (1 + math.exp(-1 / selection.scale))
    else:
        expected = discrete_gaussian_at_least_zero(selection.scale)
    shown = sum(selection.keep([selection.threshold] * GROUPS)) / GROUPS
    tolerance = 5 * math.sqrt(expected * (1 - expected) / GROUPS)
    assert abs(shown - expected) < tolerance
    # One below, it shows less often: the test can tell the threshold from its neighbour.
    below = sum(selection.keep([selection.threshold - 1] * GROUPS)) / GROUPS
    assert below < expected - tolerance


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: dp.calibrate_selection(1.0, 0.0, dp.Mechanism.LAPLACE, groups=1, minimum=2),
            "delta",
        ),
        (
            lambda: dp.calibrate_selection(0.0, 1e-8, dp.Mechanism.LAPLACE, groups=1, minimum=2),
            "epsilon",
        ),
        (
            lambda: dp.calibrate_selection(1.0, 1e-8, dp.Mechanism.LAPLACE, groups=0, minimum=2),
            "group",
        ),
    ],
)
def test_bad_selections_are_refused(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make()
