"""Truth tables and properties of the detection maths in agent/stats.py."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import stats
from agent.records import Severity

samples = st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1, max_size=12)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], math.nan), ([3], 3.0), ([1, 3], 2.0), ([5, 1, 3], 3.0), ([4, 1, 3, 2], 2.5)],
)
def test_median(values: list[float], expected: float) -> None:
    got = stats.median(values)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


@pytest.mark.parametrize(
    ("current", "baseline", "expected"),
    [
        ([20], [10], 2.0),
        ([10], [10], 1.0),
        ([5], [0], math.inf),
        ([0], [0], 1.0),
        ([30, 10, 20], [10, 10], 2.0),
    ],
)
def test_median_ratio(current: list[float], baseline: list[float], expected: float) -> None:
    assert stats.median_ratio(current, baseline) == expected


def test_median_ratio_of_empty_sample_is_nan() -> None:
    assert math.isnan(stats.median_ratio([], [1.0]))
    assert math.isnan(stats.median_ratio([1.0], []))


@pytest.mark.parametrize(
    ("current", "baseline", "ratio", "floor", "expected"),
    [
        ([12.5], [10.0], 1.25, 1.0, True),  # exactly at the ratio threshold counts
        ([12.4], [10.0], 1.25, 1.0, False),
        ([2.0], [1.0], 1.25, 5.0, False),  # doubled but under the absolute floor
        ([15.0], [10.0], 1.25, 5.0, True),  # exactly at the floor counts
        ([], [10.0], 1.25, 0.0, False),
        ([10.0], [], 1.25, 0.0, False),
    ],
)
def test_is_suspect(
    current: list[float], baseline: list[float], ratio: float, floor: float, expected: bool
) -> None:
    assert stats.is_suspect(current, baseline, ratio, floor) is expected


@pytest.mark.parametrize(
    ("value", "baseline", "expected"),
    [
        (13.0, [10.0, 10.0, 10.0, 10.0, 10.0], True),  # a steady test: any rise is beyond it
        (13.0, [6.0, 14.0, 10.0, 8.0, 12.0], False),  # within a noisy test's usual spread
        (30.0, [6.0, 14.0, 10.0, 8.0, 12.0], True),  # far beyond it
        (13.0, [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 60.0], True),  # one hiccup widens nothing
        (15.0, [6.0, 14.0], True),  # too few runs to know the spread: above all of them
        (13.0, [6.0, 14.0], False),
    ],
)
def test_beyond_noise(value: float, baseline: list[float], expected: bool) -> None:
    assert stats.beyond_noise(value, baseline) is expected


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (1.25, Severity.LOW),
        (1.49, Severity.LOW),
        (1.5, Severity.MEDIUM),
        (1.99, Severity.MEDIUM),
        (2.0, Severity.HIGH),
        (3.0, Severity.CRITICAL),
        (math.inf, Severity.CRITICAL),
    ],
)
def test_severity_bands(ratio: float, expected: Severity) -> None:
    assert stats.severity_for_ratio(ratio) is expected


def _brute_force_p(current: list[float], baseline: list[float]) -> float:
    """P(U >= observed) by enumerating every relabelling of the pooled sample."""
    pooled = current + baseline
    observed = sum(1.0 for x in current for y in baseline if x > y)
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(current)):
        xs = [pooled[i] for i in chosen]
        ys = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        total += 1
        hits += sum(1.0 for x in xs for y in ys if x > y) >= observed
    return hits / total


@pytest.mark.parametrize(
    ("current", "baseline"),
    [([5, 6, 7], [1, 2]), ([1, 2, 3], [4, 5, 6]), ([1, 5, 9], [2, 6]), ([10], [1, 2, 3, 4])],
)
def test_exact_rank_test_matches_enumeration(current: list[float], baseline: list[float]) -> None:
    result = stats.mann_whitney_greater(current, baseline)
    assert result.method == "exact"
    assert result.p_value == pytest.approx(_brute_force_p(current, baseline))


def test_rank_test_truth_table() -> None:
    clearly_slower = stats.mann_whitney_greater([30, 31, 32, 33, 34, 35], [10, 11])
    assert clearly_slower.p_value == pytest.approx(1 / 28)
    assert clearly_slower.effect == 1.0
    same = stats.mann_whitney_greater([1.0] * 6, [1.0] * 6)
    assert same.method == "normal" and same.p_value == 1.0
    empty = stats.mann_whitney_greater([], [1.0])
    assert (empty.method, empty.p_value) == ("empty", 1.0)


def test_normal_approximation_agrees_with_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    current = [float(v) for v in range(40, 100, 2)]
    baseline = [float(v) for v in range(0, 80, 3)] + [40.0, 42.0]  # ties with current
    ours = stats.mann_whitney_greater(current, baseline)
    theirs = scipy_stats.mannwhitneyu(
        current, baseline, alternative="greater", method="asymptotic", use_continuity=True
    )
    assert ours.method == "normal"
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    assert ours.u == theirs.statistic


@pytest.mark.parametrize(
    ("p_values", "alpha", "expected"),
    [
        ([0.01, 0.04, 0.03], 0.05, [True, False, False]),
        ([0.01, 0.02, 0.03], 0.06, [True, True, True]),
        ([0.2], 0.05, [False]),
        ([], 0.05, []),
        ([0.025, 0.025], 0.05, [True, True]),  # exactly at alpha/m rejects
    ],
)
def test_holm(p_values: list[float], alpha: float, expected: list[bool]) -> None:
    assert stats.holm(p_values, alpha) == expected


def test_reruns_needed_reaches_alpha() -> None:
    assert stats.reruns_needed(2, 0.05, 6, 30) == 6
    n = stats.reruns_needed(1, 0.05, 5, 30)
    assert stats.min_exact_p(n, 1) < 0.05 <= stats.min_exact_p(n - 1, 1)
    assert stats.reruns_needed(1, 0.0001, 5, 8) == 8  # capped


@given(samples, samples)
def test_rank_test_p_is_a_probability(current: list[float], baseline: list[float]) -> None:
    result = stats.mann_whitney_greater(current, baseline)
    assert 0.0 <= result.p_value <= 1.0
    assert 0.0 <= result.u <= len(current) * len(baseline)


@given(samples, samples)
def test_shifting_current_up_never_raises_p(current: list[float], baseline: list[float]) -> None:
    before = stats.mann_whitney_greater(current, baseline)
    after = stats.mann_whitney_greater([v + 2e9 for v in current], baseline)
    assert after.u >= before.u
    # The shift can merge tiny values into ties, which switches exact to normal; within one
    # method the p-value can only fall.
    if after.method == before.method:
        assert after.p_value <= before.p_value + 1e-12


@given(st.lists(st.floats(min_value=0, max_value=1), max_size=20), st.floats(0.001, 0.2))
def test_holm_agrees_with_adjusted_p_values(p_values: list[float], alpha: float) -> None:
    rejected = stats.holm(p_values, alpha)
    adjusted = stats.holm_adjusted(p_values)
    assert rejected == [a <= alpha for a in adjusted]
    # Never rejects more than uncorrected testing would.
    assert sum(rejected) <= sum(p <= alpha for p in p_values)


@given(samples, samples, st.floats(1.0, 3.0), st.floats(0, 1e6))
def test_suspect_implies_ratio_and_floor(
    current: list[float], baseline: list[float], ratio: float, floor: float
) -> None:
    if stats.is_suspect(current, baseline, ratio, floor):
        assert stats.median_ratio(current, baseline) >= ratio
        assert stats.median(current) - stats.median(baseline) >= floor
