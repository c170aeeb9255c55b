"""Pure judgement functions of learning: improvement, verdicts, hotspots."""

from __future__ import annotations

import dataclasses
from typing import Any

from agent.phases.learning.assess import FAILURE, PENDING, SUCCESS, assess, hotspots, improvement
from agent.phases.learning.observe import Sample
from agent.records import AnomalyKind
from tests.agent.phases.delivery_kit import anomaly, diagnosis

NODE = "test_calc.py::test_total"


def sample(
    run: int, failed: bool, ms: float = 1.0, failing: frozenset[str] = frozenset()
) -> Sample:
    shown = failing | ({NODE} if failed else set())
    return Sample(run, run * 10, "c", True, failed, ms * 1e6, frozenset(shown))


def test_improvement_truth_table() -> None:
    assert improvement({"duration_ms": 40.0}, {"duration_ms": 10.0}) == (0.75, 0.0, 0.0)
    assert improvement({"failure_rate": 1.0}, {"failure_rate": 0.0}) == (0.0, 1.0, 0.0)
    assert improvement({"coverage": 80.0}, {"coverage": 82.5}) == (0.0, 0.0, 2.5)
    assert improvement({}, {"duration_ms": 1.0}) == (0.0, 0.0, 0.0)  # unknown side: no claim
    assert improvement({"duration_ms": 0.0}, {"duration_ms": 1.0}) == (0.0, 0.0, 0.0)


def test_verdicts() -> None:
    a = anomaly()
    before = [sample(2, True)]
    ok: dict[str, Any] = {"present": True, "perf_ratio": 1.25}
    assert assess(a, before, {}, [], **ok).outcome == PENDING
    assert assess(a, before, {}, [sample(3, False)], **ok).outcome == SUCCESS
    still = assess(a, before, {}, [sample(3, False), sample(4, True)], **ok)
    assert still.outcome == FAILURE and "still failed in 1 of 2" in still.reasons[0]
    broke = assess(a, before, {}, [sample(3, False, failing=frozenset({"t::other"}))], **ok)
    assert broke.outcome == FAILURE and "newly failing since the fix: t::other" in broke.reasons
    gone = assess(a, before, {}, [sample(3, False)], present=False, perf_ratio=1.25)
    assert gone.outcome == FAILURE
    unseen = dataclasses.replace(sample(3, False), subject_seen=False)
    assert assess(a, before, {}, [unseen], **ok).outcome == PENDING


def test_performance_verdict_uses_the_baseline_and_ratio() -> None:
    a = dataclasses.replace(anomaly(), kind=AnomalyKind.PERFORMANCE)
    before = {"duration_ms": 40.0, "baseline_ms": 10.0}
    fast = assess(a, [], before, [sample(3, False, 12.4)], present=True, perf_ratio=1.25)
    slow = assess(a, [], before, [sample(3, False, 12.6)], present=True, perf_ratio=1.25)
    assert (fast.outcome, slow.outcome) == (SUCCESS, FAILURE)
    assert "still slow: 12.6 ms against a limit of 12.5 ms" in slow.reasons[0]


def test_hotspots_count_episodes_at_the_diagnosed_code() -> None:
    first = dataclasses.replace(anomaly(), id="a1", run_id=1, commit="c1", baseline_commit="c0")
    ongoing = dataclasses.replace(first, id="a2", run_id=2, commit="c2", baseline_commit="c1")
    assert hotspots([first, ongoing], [dataclasses.replace(diagnosis(), anomaly_id="a1")]) == []
    again = dataclasses.replace(first, id="a3", run_id=5, commit="c5", baseline_commit="c4")
    spots = hotspots([first, ongoing, again], [dataclasses.replace(diagnosis(), anomaly_id="a1")])
    assert spots == [("calc.py:total", 2)]


def test_timing_within_the_noise_floor_is_not_still_slow() -> None:
    a = dataclasses.replace(anomaly(), kind=AnomalyKind.PERFORMANCE)
    before = {"duration_ms": 270.0, "baseline_ms": 0.5}
    quick = [sample(3, False, 1.6)]  # 3x the baseline, but 1.1 ms is timer noise
    assert assess(a, [], before, quick, present=True, perf_ratio=1.25).outcome == FAILURE
    assert assess(a, [], before, quick, present=True, perf_ratio=1.25, floor_ms=5.0).outcome == (
        SUCCESS
    )
