"""A DDSketch-style quantile sketch: log-spaced buckets, bounded, mergeable, 1% relative error."""

from __future__ import annotations

import math
from collections.abc import Iterable

# Every sketch shares one accuracy so any two can be merged; stored sketches rely on it too.
RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
ZERO_KEY = -1  # values below 1 (0 ns durations); bucket keys of values >= 1 are >= 0
# Integer nanoseconds below 2**63 need keys up to ceil(log_gamma(2**63)) ~ 2166: bounded
# whatever the number of values, so no bucket ever has to be collapsed.
MAX_KEY = math.ceil(math.log(2.0**63) * INV_LOG_GAMMA)


def bucket_key(value: float) -> int:
    """The bucket holding `value`: (gamma**(k-1), gamma**k]; values below 1 share ZERO_KEY."""
    if value < 1:
        return ZERO_KEY
    return min(math.ceil(math.log(value) * INV_LOG_GAMMA), MAX_KEY)


def bucket_value(key: int) -> float:
    """The estimate for every value in bucket `key`: within RELATIVE_ACCURACY of each of them."""
    if key == ZERO_KEY:
        return 0.0
    return 2.0 * GAMMA**key / (GAMMA + 1.0)


class QuantileSketch:
    """Counts per log bucket; quantiles are accurate to 1% of the value, whatever the count."""

    __slots__ = ("buckets", "count")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0

    def add(self, value: float, weight: int = 1) -> None:
        if value < 0:
            raise ValueError(f"negative value {value} in a duration sketch")
        key = ZERO_KEY if value < 1 else min(math.ceil(math.log(value) * INV_LOG_GAMMA), MAX_KEY)
        self.buckets[key] = self.buckets.get(key, 0) + weight
        self.count += weight

    def merge(self, other: QuantileSketch) -> None:
        """Add `other`'s counts: the result is exactly the sketch of both inputs together."""
        for key, count in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + count
        self.count += other.count

    def quantile(self, q: float) -> float:
        """The value at rank floor(q * (count - 1)) of the sorted input, within 1%."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q} outside [0, 1]")
        if self.count == 0:
            return 0.0
        rank = math.floor(q * (self.count - 1))
        seen = 0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen > rank:
                return bucket_value(key)
        return bucket_value(max(self.buckets))  # unreachable while counts add up

    def to_pairs(self) -> tuple[tuple[int, int], ...]:
        """(bucket key, count) pairs in key order, as TelemetryMetrics.sketch stores them."""
        return tuple(sorted(self.buckets.items()))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int]]) -> QuantileSketch:
        sketch = cls()
        for key, count in pairs:
            if count < 0 or (key < 0 and key != ZERO_KEY) or key > MAX_KEY:
                raise ValueError(f"bad sketch bucket ({key}, {count})")
            sketch.buckets[key] = sketch.buckets.get(key, 0) + count
            sketch.count += count
        return sketch

    def __len__(self) -> int:
        return len(self.buckets)
