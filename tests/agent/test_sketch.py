"""Quantile sketch: within 1% of the exact quantile, merge equals one sketch of both, bounded."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.sketch import MAX_KEY, RELATIVE_ACCURACY, ZERO_KEY, QuantileSketch, bucket_value

durations = st.lists(st.integers(min_value=0, max_value=2**62), min_size=1, max_size=400)
quantiles = st.sampled_from([0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0])


def exact(values: list[int], q: float) -> int:
    return sorted(values)[math.floor(q * (len(values) - 1))]


def sketch_of(values: list[int]) -> QuantileSketch:
    sketch = QuantileSketch()
    for v in values:
        sketch.add(v)
    return sketch


@settings(max_examples=300, deadline=None)
@given(durations, quantiles)
def test_quantile_within_one_percent(values: list[int], q: float) -> None:
    estimate = sketch_of(values).quantile(q)
    truth = exact(values, q)
    if truth == 0:
        assert estimate == 0
    else:
        assert abs(estimate - truth) <= RELATIVE_ACCURACY * truth


@settings(max_examples=200, deadline=None)
@given(durations, durations, quantiles)
def test_merge_is_the_sketch_of_both_inputs(a: list[int], b: list[int], q: float) -> None:
    merged = sketch_of(a)
    merged.merge(sketch_of(b))
    both = sketch_of(a + b)
    assert merged.to_pairs() == both.to_pairs()
    assert merged.count == len(a) + len(b)
    truth = exact(a + b, q)
    assert abs(merged.quantile(q) - truth) <= RELATIVE_ACCURACY * truth


@settings(max_examples=100, deadline=None)
@given(durations)
def test_pairs_round_trip(values: list[int]) -> None:
    sketch = sketch_of(values)
    again = QuantileSketch.from_pairs(sketch.to_pairs())
    assert again.to_pairs() == sketch.to_pairs() and again.count == sketch.count


def test_size_is_bounded_whatever_the_count() -> None:
    sketch = QuantileSketch()
    value = 1
    while value < 2**63:  # every magnitude a nanosecond duration can have
        for step in range(50):
            sketch.add(value + step * value // 50)
        value *= 2
    sketch.add(0)
    assert len(sketch) <= MAX_KEY + 2
    assert min(sketch.buckets) == ZERO_KEY and max(sketch.buckets) <= MAX_KEY


def test_edge_cases() -> None:
    empty = QuantileSketch()
    assert empty.quantile(0.5) == 0.0
    with pytest.raises(ValueError, match="negative"):
        empty.add(-1)
    with pytest.raises(ValueError, match="outside"):
        empty.quantile(1.5)
    with pytest.raises(ValueError, match="bad sketch bucket"):
        QuantileSketch.from_pairs([(-5, 1)])
    assert bucket_value(ZERO_KEY) == 0.0
    one = sketch_of([7])
    assert all(one.quantile(q) == pytest.approx(7, rel=0.01) for q in (0, 0.5, 1))
