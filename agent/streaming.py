"""A streaming detector for one metric series: robust spikes and rank-tested level shifts.

Each value is judged against a rolling baseline (the last `window` accepted values) by its
robust z-score, |x - median| / (1.4826 * MAD). A run of `shift_window` values is compared with
the baseline by the same one-sided rank test the anomaly phase uses (agent.stats); a shift needs
both the test (p <= alpha) and an effect of at least `threshold` robust deviations. Decisions
come out `shift_window` values late, once a value is known to be a lone spike or part of a shift.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

from agent import stats

MAD_TO_SD = 1.4826  # MAD of a normal sample times this estimates its standard deviation
REL_FLOOR = 0.01  # a flat baseline still has a noise scale of 1% of its level
MAX_SCORE = 1e6  # scores stay finite (JSON has no infinity)


@dataclass(frozen=True)
class Point:
    timestamp: str
    value: float


@dataclass(frozen=True)
class Detection:
    """One anomaly: a lone spike or dip, or the first point of a level shift."""

    timestamp: str
    value: float
    score: float
    kind: str  # spike | dip | level_shift_up | level_shift_down
    p_value: float | None = None


def robust_scale(values: list[float]) -> tuple[float, float]:
    """(median, noise scale) of a sample; the scale never reaches zero."""
    mid = stats.median(values)
    mad = stats.median([abs(v - mid) for v in values])
    return mid, max(MAD_TO_SD * mad, REL_FLOOR * abs(mid), 1e-12)


def robust_score(value: float, baseline: list[float]) -> float:
    mid, scale = robust_scale(baseline)
    return min(MAX_SCORE, abs(value - mid) / scale)


class StreamingDetector:
    """Feed values in time order with `push`; call `finish` at the end of the series."""

    def __init__(
        self,
        window: int = 60,
        shift_window: int = 8,
        threshold: float = 5.0,
        alpha: float = 0.001,
        min_baseline: int = 10,
    ) -> None:
        if window < min_baseline or shift_window < 3 or threshold <= 0 or not 0 < alpha < 1:
            raise ValueError("window >= min_baseline, shift_window >= 3, threshold > 0, 0<alpha<1")
        self.window = window
        self.shift_window = shift_window
        self.threshold = threshold
        self.alpha = alpha
        self.min_baseline = min_baseline
        self._baseline: collections.deque[float] = collections.deque(maxlen=window)
        self._recent: collections.deque[Point] = collections.deque()

    def push(self, point: Point) -> list[Detection]:
        self._recent.append(point)
        if len(self._baseline) < self.min_baseline:
            # Warming up: the first values form the baseline as they come.
            self._baseline.append(self._recent.popleft().value)
            return []
        if len(self._recent) < self.shift_window:
            return []
        shift = self._level_shift()
        if shift is not None:
            return shift
        return self._release_oldest()

    def finish(self) -> list[Detection]:
        """Judge the values still held back (too few left to test a shift)."""
        out: list[Detection] = []
        while self._recent:
            out.extend(self._release_oldest())
        return out

    def _level_shift(self) -> list[Detection] | None:
        base = list(self._baseline)
        recent = [p.value for p in self._recent]
        mid, scale = robust_scale(base)
        moved = stats.median(recent) - mid
        effect = abs(moved) / scale
        if effect < self.threshold:
            return None
        test = (
            stats.mann_whitney_greater(recent, base)
            if moved > 0
            else stats.mann_whitney_greater(base, recent)
        )
        if test.p_value > self.alpha:
            return None
        # The change point: the first value past half the move; those before it are judged
        # against the old baseline, and the new level is the baseline from there on.
        half = mid + moved / 2
        points = list(self._recent)
        start = next(
            i for i, p in enumerate(points) if (p.value > half if moved > 0 else p.value < half)
        )
        self._recent.clear()
        self._recent.extend(points[:start])
        early = self.finish()
        self._baseline.clear()
        self._baseline.extend(p.value for p in points[start:])
        kind = "level_shift_up" if moved > 0 else "level_shift_down"
        first = points[start]
        score = round(min(effect, MAX_SCORE), 4)
        return [*early, Detection(first.timestamp, first.value, score, kind, test.p_value)]

    def _release_oldest(self) -> list[Detection]:
        point = self._recent.popleft()
        base = list(self._baseline)
        score = robust_score(point.value, base)
        if score >= self.threshold:
            kind = "spike" if point.value > stats.median(base) else "dip"
            return [Detection(point.timestamp, point.value, round(score, 4), kind)]
        self._baseline.append(point.value)  # outliers stay out of the baseline
        return []


def detect_series(
    points: list[Point], detector: StreamingDetector | None = None
) -> list[Detection]:
    """Run a whole series through a streaming detector."""
    detector = detector or StreamingDetector()
    found: list[Detection] = []
    for point in points:
        found.extend(detector.push(point))
    found.extend(detector.finish())
    return found


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
