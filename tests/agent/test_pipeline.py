"""The after-tests pipeline on a real store: telemetry, then detection on what it handed on."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent.config import Config
from agent.pipeline import TestRun, run_after_tests
from agent.records import AnomalyKind, EventSource, SpanStatus, TelemetryEvent
from agent.store import Store

MS = 1_000_000


def _session(call_ms: Mapping[str, float], commit: str) -> TestRun:
    events = tuple(
        TelemetryEvent(
            source=EventSource.TEST,
            service="pytest",
            operation=nodeid.rsplit("::", 1)[-1],
            start_ns=1 + i,
            duration_ns=int(ms * MS) + 1000,
            status=SpanStatus.OK,
            trace_id="1" * 32,
            span_id=f"{i + 1:016x}",
            attributes={
                "selfheal.test.nodeid": nodeid,
                "selfheal.test.outcome": "passed",
                "selfheal.test.call_ns": int(ms * MS),
            },
        )
        for i, (nodeid, ms) in enumerate(call_ms.items())
    )
    return TestRun(events=events, commit=commit, env_key="e")


def test_timing_reruns_run_with_the_collector_on_while_the_data_path_pauses_it(
    tmp_path: Path,
) -> None:
    config = Config(root=tmp_path, store=tmp_path / "s.db", budget_s=0)
    seen: dict[str, list[bool]] = {"sampler": [], "phases": []}

    def sampler(nodeids: Sequence[str], runs: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
        seen["sampler"].append(gc.isenabled())
        return {n: (60 * MS,) * runs[n] for n in nodeids}

    def progress(message: str) -> None:  # called from inside the beats
        seen["phases"].append(gc.isenabled())

    steady = {"t.py::a": 10.0, "t.py::b": 10.0}
    with Store.open(config.store) as store:
        for n in range(3):
            run_after_tests(config, _session(steady, f"c{n}"), store=store)
        slow = _session({**steady, "t.py::a": 60.0}, "c3")
        result = run_after_tests(
            config, dataclasses.replace(slow, sampler=sampler), store=store, progress=progress
        )
    assert gc.isenabled()
    assert seen["sampler"] and all(seen["sampler"])  # measured like the suite it re-times
    assert seen["phases"] and not any(seen["phases"])
    assert result.tests == 2 and result.baseline_runs == 3
    (anomaly,) = result.anomalies
    assert anomaly.kind is AnomalyKind.PERFORMANCE and anomaly.tests == ("t.py::a",)
