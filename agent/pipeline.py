"""Plays the phases in order on what a test run recorded: telemetry, then anomaly detection."""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.records import Anomaly, TelemetryEvent
from agent.store import Store


@dataclass(frozen=True)
class TestRun:
    """What the plugin hands over at the end of a session."""

    __test__ = False  # not a pytest test class, whatever its name

    events: tuple[TelemetryEvent, ...]
    commit: str = ""
    dirty: bool = False
    env_key: str = ""
    root: Path | None = None
    rerun: Any = None  # agent.phases.anomaly.RerunSpec, or None for no confirming re-runs
    coverage: Mapping[str, Any] | None = None  # {"per_test": ..., "statements": ...}
    sampler: Any = None  # agent.phases.anomaly.model.Sampler: in-process timing re-runs
    timed: bool = True  # False: durations measured under coverage tracing
    # Events that arrive while the tests still run (the plugin's sidecar), stored as they come;
    # the last chunk carries the RunEnd, whose values replace coverage, sampler and timed.
    feed: Callable[[], tuple[tuple[TelemetryEvent, ...], RunEnd | None]] | None = None
    # Spans that end last (the session's): see TelemetryRequest.parents.
    parents: tuple[tuple[str, str, tuple[str, str, str]], ...] = ()


@dataclass(frozen=True)
class RunEnd:
    """What only the end of a session tells: its coverage, its re-runs, how it was timed."""

    coverage: Mapping[str, Any] | None = None
    sampler: Any = None
    timed: bool = True


@dataclass(frozen=True)
class PipelineResult:
    run_id: int
    tests: int
    anomalies: tuple[Anomaly, ...] = ()
    baseline_runs: int = 0
    coverage_map_id: int = 0
    notes: tuple[str, ...] = ()
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    heal: Any = None  # agent.heal.HealOutcome when healing ran
    learning: Any = None  # agent.phases.learning.TrackBaton: fixes judged on this run


def run_after_tests(
    config: Config,
    run: TestRun,
    *,
    store: Store | None = None,
    progress: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Store the run through the telemetry phase, then detect anomalies against its history."""
    from agent.conductor import Conductor
    from agent.phases.telemetry import gc_paused

    timings: dict[str, float] = {}
    started = time.perf_counter()
    factory = (lambda: store) if store is not None else None
    conductor = Conductor(config, store_factory=factory, progress=progress)
    with conductor, conductor.grouped():  # one `pipeline` run for all phases
        # The data path makes only acyclic data; the collector's passes over the test session's
        # heap cost more than the rest of a green run's detection (see gc_paused).
        collector = gc.isenabled()
        # Only the small result outlives the pause: what was made in it is freed before the
        # collector runs again, which would otherwise traverse all of it once.
        with gc_paused():
            found = _record_and_detect(conductor, run, collector, started, timings)
            learned = _learn(conductor, progress)
        _prune(conductor.store(), config.raw_test_runs, progress)
        anomalies = found.anomalies
        healed = None
        # A running agent of this project (or the agent that started this run) heals instead.
        handed = _hand_off(config, anomalies) if config.budget_s > 0 else None
        if handed is None and anomalies and config.budget_s > 0:
            from agent.heal import heal

            healed = heal(conductor, anomalies, config.budget_s, progress)
            timings["heal"] = _lap(started) - timings["anomaly"] - timings["telemetry"]
    notes = found.notes + ((handed.line(),) if handed is not None else ())
    return dataclasses.replace(found, notes=notes, heal=healed, learning=learned)


def _record_and_detect(
    conductor: Any, run: TestRun, collector: bool, started: float, timings: dict[str, float]
) -> PipelineResult:
    """Phases 1 and 2: the stored run and what detection found in it."""
    from agent.phases.anomaly import DetectRequest, detect_run
    from agent.phases.telemetry import TelemetryRequest, ingest

    ends: list[RunEnd] = []
    observed: list[Any] = []  # a fed run's tests, observed chunk by chunk as they come
    # A fed run is stored while its tests run; its baseline is read, and the store's log
    # checkpointed, meanwhile too.
    ahead = _read_ahead(conductor.store(), run.env_key) if run.feed is not None else None
    outcome = ingest(
        conductor,
        TelemetryRequest(
            events=run.events,
            run_kind="test",
            commit=run.commit,
            dirty=run.dirty,
            env_key=run.env_key,
            keep_raw=True,
            hand_on=True,  # detection reads the run from memory, not back from the store
            feed=_fed(run.feed, ends, observed) if run.feed is not None else None,
            parents=run.parents,
        ),
    )
    if ends:
        end = ends[0]
        run = dataclasses.replace(run, coverage=end.coverage, sampler=end.sampler, timed=end.timed)
    sampler = _collecting(run.sampler, collector)
    timings["telemetry"] = _lap(started)
    map_id = _save_coverage(conductor.store(), run, outcome.run_id)
    baton = detect_run(
        conductor,
        DetectRequest(
            run_id=outcome.run_id,
            env_key=run.env_key,
            commit=run.commit,
            dirty=run.dirty,
            root=run.root,
            rerun=run.rerun,
            coverage_map_id=map_id,
            sampler=sampler,
            timed=run.timed,
            events=outcome.handed_on,
            ahead=ahead,
            current=tuple(observed) if run.feed is not None else None,
        ),
    )
    timings["anomaly"] = _lap(started) - timings["telemetry"]
    return PipelineResult(
        run_id=outcome.run_id,
        tests=len(baton.current),
        anomalies=baton.anomalies,
        baseline_runs=len(baton.baseline_runs),
        coverage_map_id=map_id,
        notes=baton.notes,
        timings_ms=timings,
    )


def _read_ahead(store: Store, env_key: str) -> Any:
    from agent.phases.anomaly.baseline import read_ahead

    store.checkpoint_early()
    return read_ahead(store, env_key)


def _fed(
    feed: Callable[[], tuple[tuple[TelemetryEvent, ...], RunEnd | None]],
    ends: list[RunEnd],
    observed: list[Any],
) -> Callable[[], tuple[tuple[TelemetryEvent, ...], bool]]:
    """The telemetry phase's view of a run's feed; the last chunk's RunEnd lands in `ends`,
    and each chunk's tests in `observed` (a test's app spans come in its chunk, before it)."""
    from agent.phases.anomaly.baseline import current_from_events

    def chunk() -> tuple[tuple[TelemetryEvent, ...], bool]:
        events, end = feed()
        if end is not None:
            ends.append(end)
        observed.extend(current_from_events(events))
        return events, end is not None

    return chunk


def _collecting(sampler: Any, collector: bool) -> Any:
    """The in-process timing re-runs, with the collector as it was while the suite ran: the
    re-runs are compared with the suite's durations, so they are measured the same way."""
    if sampler is None:
        return None

    def sample(nodeids: Sequence[str], runs: Mapping[str, int]) -> Any:
        paused = not gc.isenabled()
        if collector and paused:
            gc.enable()
        try:
            return sampler(nodeids, runs)
        finally:
            if collector and paused:
                gc.disable()

    return sample


def _prune(store: Store, keep: int, progress: Callable[[str], None] | None) -> None:
    """Bounded growth: old test runs' raw spans go (their history and baselines stay). A store
    too busy for it now is pruned by a later run; it never costs this run its results."""
    import sqlite3

    from agent.errors import SelfHealError

    try:
        store.prune_test_spans(keep)
    except (SelfHealError, sqlite3.Error) as exc:
        if progress is not None:
            progress(f"selfheal: old raw spans not pruned: {exc}")


def _learn(conductor: Any, progress: Callable[[str], None] | None) -> Any:
    """Phase 7 on every run: judge fixes that landed since, on this run's results."""
    from agent.errors import SelfHealError
    from agent.phases.learning import track

    try:
        return track(conductor)
    except SelfHealError as exc:  # learning never costs the run its results
        if progress is not None:
            progress(f"selfheal: learning skipped: {exc}")
        return None


def _hand_off(config: Config, anomalies: tuple[Anomaly, ...]) -> Any:
    from agent.handoff import hand_off

    return hand_off(config, [a.id for a in anomalies])


def _save_coverage(store: Store, run: TestRun, run_id: int) -> int:
    if not run.coverage or not run.coverage.get("statements"):
        return 0
    from agent import coverage_map

    return coverage_map.save(
        store,
        per_test=run.coverage.get("per_test", {}),
        statements=run.coverage["statements"],
        commit=run.commit,
        dirty=run.dirty,
        run_id=run_id,
    )


def _lap(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
