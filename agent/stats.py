"""Detection maths as small pure functions: rank test, Holm correction, ratios, severity bands."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from agent.records import Severity

# Exact U distributions are counted by dynamic programming; above this many pairs the normal
# approximation is already accurate to well below any alpha we use, and far cheaper.
EXACT_MAX_PAIRS = 2500
DEFAULT_BANDS = (1.5, 2.0, 3.0)


@dataclass(frozen=True)
class RankTest:
    """Result of a one-sided Mann-Whitney U test that `current` is larger than `baseline`."""

    u: float  # U statistic of the current sample
    p_value: float
    method: str  # "exact" | "normal" | "empty"
    n_current: int
    n_baseline: int

    @property
    def effect(self) -> float:
        """Common-language effect size: P(current > baseline), ties counted half."""
        pairs = self.n_current * self.n_baseline
        return self.u / pairs if pairs else 0.5


def median(values: Sequence[float]) -> float:
    """The median; NaN for an empty sample (callers decide what that means)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2


def median_ratio(current: Sequence[float], baseline: Sequence[float]) -> float:
    """median(current) / median(baseline); inf when only the baseline is zero, NaN if empty."""
    cur, base = median(current), median(baseline)
    if math.isnan(cur) or math.isnan(base):
        return math.nan
    if base <= 0:
        return math.inf if cur > 0 else 1.0
    return cur / base


def is_suspect(
    current: Sequence[float], baseline: Sequence[float], ratio: float, floor: float
) -> bool:
    """The effect-size screen: median ratio at least `ratio` AND growth at least `floor`."""
    r = median_ratio(current, baseline)
    if math.isnan(r):
        return False
    return r >= ratio and median(current) - median(baseline) >= floor


# Below this many baseline runs the spread of a test's durations is not known well enough to
# estimate (two cannot tell a spread from one slow run).
NOISE_MIN_BASELINE = 3
NOISE_Z = 3.0  # how many robust standard deviations one measurement must clear


def beyond_noise(value: float, baseline: Sequence[float], z: float = NOISE_Z) -> bool:
    """Is one measurement above the baseline's usual spread (median + z robust sigmas)?

    The robust sigma is 1.4826 x the median absolute deviation: one hiccup in the history does
    not widen it, and a test whose durations never varied (MAD 0) is judged by the ratio alone.
    With fewer runs than that needs, the measurement must at least exceed every one of them.
    """
    if not baseline:
        return True
    if len(baseline) < NOISE_MIN_BASELINE:
        return value > max(baseline)
    centre = median(baseline)
    sigma = 1.4826 * median([abs(b - centre) for b in baseline])
    return value > centre + z * sigma


def severity_for_ratio(ratio: float, bands: tuple[float, float, float] = DEFAULT_BANDS) -> Severity:
    """Below the first band low; then medium, high, critical at each band (inclusive)."""
    medium, high, critical = bands
    if ratio >= critical:
        return Severity.CRITICAL
    if ratio >= high:
        return Severity.HIGH
    if ratio >= medium:
        return Severity.MEDIUM
    return Severity.LOW


def mann_whitney_greater(current: Sequence[float], baseline: Sequence[float]) -> RankTest:
    """One-sided rank test; exact without ties on small samples, else normal with tie correction."""
    n1, n2 = len(current), len(baseline)
    if not n1 or not n2:
        return RankTest(0.0, 1.0, "empty", n1, n2)
    u, ties = _u_statistic(current, baseline)
    if not ties and n1 * n2 <= EXACT_MAX_PAIRS:
        return RankTest(u, _exact_upper_tail(n1, n2, int(u)), "exact", n1, n2)
    return RankTest(u, _normal_upper_tail(u, n1, n2, ties), "normal", n1, n2)


def _u_statistic(current: Sequence[float], baseline: Sequence[float]) -> tuple[float, list[int]]:
    """U of `current` from mid-ranks, and the sizes of tied groups (for the variance)."""
    pooled = sorted([(v, 0) for v in current] + [(v, 1) for v in baseline])
    ranks_current = 0.0
    ties: list[int] = []
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        mid_rank = (i + j) / 2 + 1
        ranks_current += mid_rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        if j > i:
            ties.append(j - i + 1)
        i = j + 1
    n1 = len(current)
    return ranks_current - n1 * (n1 + 1) / 2, ties


def _exact_upper_tail(n1: int, n2: int, u: int) -> float:
    """P(U >= u) under H0 with no ties: counts of arrangements over C(n1 + n2, n1)."""
    counts = _u_counts(n1, n2)
    return sum(counts[u:]) / math.comb(n1 + n2, n1)


@lru_cache(maxsize=256)
def _u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """How many arrangements give each U from 0 to n1*n2 (the recursion on the largest value)."""
    # f(a, b)[u] = f(a-1, b)[u-b] + f(a, b-1)[u]: the largest value is from sample 1 or 2.
    table: list[list[list[int]]] = [[[1] for _ in range(n2 + 1)] for _ in range(n1 + 1)]
    for a in range(1, n1 + 1):
        for b in range(1, n2 + 1):
            size = a * b + 1
            row = [0] * size
            for u, c in enumerate(table[a - 1][b]):
                row[u + b] += c
            for u, c in enumerate(table[a][b - 1]):
                row[u] += c
            table[a][b] = row
    return tuple(table[n1][n2])


def _normal_upper_tail(u: float, n1: int, n2: int, ties: list[int]) -> float:
    n = n1 + n2
    mean = n1 * n2 / 2
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1)) if n > 1 else 0.0
    variance = n1 * n2 / 12 * ((n + 1) - tie_term)
    if variance <= 0:
        return 1.0  # every value equal: no evidence either way
    z = (u - mean - 0.5) / math.sqrt(variance)  # continuity correction towards H0
    return 0.5 * math.erfc(z / math.sqrt(2))


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm-Bonferroni step-down: which hypotheses are rejected at family-wise level alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    m = len(p_values)
    for step, i in enumerate(order):
        if p_values[i] > alpha / (m - step):
            break
        rejected[i] = True
    return rejected


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (monotone, capped at 1): reject where adjusted <= alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    m = len(p_values)
    for step, i in enumerate(order):
        running = max(running, min(1.0, p_values[i] * (m - step)))
        adjusted[i] = running
    return adjusted


def min_exact_p(n1: int, n2: int) -> float:
    """The smallest one-sided p-value an exact test on these sample sizes can reach."""
    if not n1 or not n2:
        return 1.0
    return 1 / math.comb(n1 + n2, n1)


def reruns_needed(n_baseline: int, alpha: float, minimum: int, cap: int) -> int:
    """Current-sample size (counting the run already made) that can reach p < alpha at all."""
    n = max(1, minimum)
    while n < cap and min_exact_p(n, n_baseline) >= alpha:
        n += 1
    return n


def relative_spread(values: Sequence[float]) -> float:
    """Median absolute deviation over the median: a robust noise level; 0 for tiny samples."""
    mid = median(values)
    if len(values) < 2 or not mid:
        return 0.0
    return median([abs(v - mid) for v in values]) / mid
