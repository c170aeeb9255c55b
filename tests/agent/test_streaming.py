"""The streaming detector: spikes, dips, level shifts, and quiet on noise."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.streaming import Point, StreamingDetector, detect_series, robust_scale


def _series(values: list[float]) -> list[Point]:
    return [Point(str(i), v) for i, v in enumerate(values)]


def _noise(n: int, seed: int = 1, level: float = 100.0, sd: float = 2.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(level, sd) for _ in range(n)]


def test_spike_and_dip_are_single_points() -> None:
    values = _noise(120)
    values[70] = 150.0
    values[90] = 40.0
    found = detect_series(_series(values))
    assert [(d.timestamp, d.kind) for d in found] == [("70", "spike"), ("90", "dip")]
    assert found[0].score > 10


@pytest.mark.parametrize(("delta", "kind"), [(30.0, "level_shift_up"), (-30.0, "level_shift_down")])
def test_level_shift_is_reported_once_at_its_start(delta: float, kind: str) -> None:
    values = _noise(100) + [v + delta for v in _noise(80, seed=2)]
    found = detect_series(_series(values))
    assert [(d.timestamp, d.kind) for d in found] == [("100", kind)]
    assert found[0].p_value is not None and found[0].p_value < 0.001


def test_noise_alone_gives_almost_nothing() -> None:
    found = [d for seed in range(5) for d in detect_series(_series(_noise(400, seed=seed)))]
    assert len(found) <= 2  # 2,000 gaussian points at 5 robust deviations


def test_flat_series_has_a_scale_and_finite_scores() -> None:
    mid, scale = robust_scale([5.0] * 20)
    assert (mid, scale) == (5.0, pytest.approx(0.05))
    found = detect_series(_series([5.0] * 40 + [1e9] + [5.0] * 20))
    assert [d.kind for d in found] == ["spike"]
    assert found[0].score == 1e6


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        StreamingDetector(window=3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=200))
def test_any_series_is_judged_without_error(values: list[float]) -> None:
    found = detect_series(_series(values))
    assert len(found) <= len(values)
    assert all(d.score >= 0 for d in found)
    assert len({d.timestamp for d in found}) == len(found)  # each point judged once
