"""The anomaly phase's request, baton and the per-test observations its detectors read."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from agent.records import Anomaly, AttrValue, CodeLocation, EventSource

_NO_CHILDREN: Mapping[str, int] = MappingProxyType({})

# (nodeids, runs per nodeid) -> call durations in ns of the passing runs, per nodeid.
Sampler = Callable[[Sequence[str], Mapping[str, int]], Mapping[str, tuple[int, ...]]]

# Outcomes as the plugin records them on each test span.
PASSED, FAILED, ERROR = "passed", "failed", "error"
SKIPPED, XFAILED, XPASSED = "skipped", "xfailed", "xpassed"
FAILING = frozenset({FAILED, ERROR})
GREEN = frozenset({PASSED, XPASSED, XFAILED, SKIPPED})

# Attribute names the plugin sets on test spans (read back from the stored events).
ATTR_NODEID = "selfheal.test.nodeid"
ATTR_OUTCOME = "selfheal.test.outcome"
ATTR_SETUP_NS = "selfheal.test.setup_ns"
ATTR_CALL_NS = "selfheal.test.call_ns"
ATTR_TEARDOWN_NS = "selfheal.test.teardown_ns"
ATTR_WORKER = "selfheal.test.worker"
ATTR_RATIO = "selfheal.threshold.ratio"
ATTR_FLOOR_MS = "selfheal.threshold.floor_ms"


@dataclass(frozen=True)
class RerunSpec:
    """How to start pytest on the project again: argv prefix, directory and environment."""

    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 120.0


class StoredEvent(Protocol):
    """One stored span as detection reads it: a TelemetryEvent, or the telemetry phase's own
    normalised form of it (handed on with the run, see `DetectRequest.events`)."""

    @property
    def source(self) -> EventSource: ...
    @property
    def operation(self) -> str: ...
    @property
    def start_ns(self) -> int: ...
    @property
    def duration_ns(self) -> int: ...
    @property
    def span_id(self) -> str: ...
    @property
    def parent_span_id(self) -> str: ...
    @property
    def location(self) -> CodeLocation: ...
    @property
    def exception_message(self) -> str: ...
    @property
    def exception_signature(self) -> str: ...
    @property
    def attributes(self) -> Mapping[str, AttrValue]: ...


@dataclass(frozen=True)
class DetectRequest:
    """What to compare: a stored test run (or telemetry run) against its comparable history."""

    run_id: int
    env_key: str = ""
    commit: str = ""
    dirty: bool = False
    root: Path | None = None  # repository root, for changed lines and coverage gaps
    rerun: RerunSpec | None = None  # None: no confirming re-runs (rank test on history only)
    coverage_map_id: int = 0  # the map refreshed in this run, if any
    detected_ns: int = 0
    # Timing re-runs inside the process that ran the suite (cheaper and measured under the same
    # conditions as the suite); None: timing suspects are re-run in a subprocess like failures.
    sampler: Sampler | None = None
    # False when the run's durations were measured under coverage tracing: they are still
    # screened (suspects are confirmed by untraced re-runs) but never become baseline.
    timed: bool = True
    # The run's stored events in `spans` order, as the telemetry phase handed them on (no
    # re-read of what was just written); None: read the run back from the store.
    events: Sequence[StoredEvent] | None = field(default=None, repr=False, compare=False)
    # The rolling baseline read ahead while the run was recorded (baseline.ReadAhead), used
    # if the store has not changed since; None: read it now.
    ahead: Any = field(default=None, repr=False, compare=False)
    # The run's tests, observed from its events as they were stored (a fed run, observed
    # while its tests ran); None: observed from `events`, or from the store.
    current: tuple[TestObservation, ...] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class TestObservation:
    """One test in one run, as the detectors need it."""

    __test__ = False  # not a pytest test class, whatever its name

    nodeid: str
    outcome: str
    call_ns: int
    total_ns: int
    signature: str = ""
    message: str = ""
    file: str = ""
    line: int = 0
    worker: str = ""
    start_ns: int = 0
    children: Mapping[str, int] = field(default_factory=dict)  # child operation -> count
    ratio: float | None = None  # per-test thresholds from the selfheal marker
    floor_ms: float | None = None


def stored_call_ns(call_ns: int, timed: bool) -> int:
    """A call duration as history keeps it: one measured under coverage tracing is negated
    below -1, so that it is never taken for an untraced one (-1 alone: traced, duration not
    kept, as stores before traced baselines wrote it)."""
    return call_ns if timed else -call_ns - 2


def traced_ns(stored: int) -> int | None:
    """The traced duration a stored call duration holds, or None for an untraced one."""
    return -stored - 2 if stored <= -2 else None


class PastResult(NamedTuple):
    """One earlier result of a test in a comparable environment.

    A named tuple, not a dataclass: a baseline holds tens of thousands of these (tests x
    history) and tuples are built several times faster, which is most of a green run's cost.
    """

    run_id: int
    commit: str
    dirty: bool
    outcome: str
    call_ns: int
    signature: str = ""
    children: Mapping[str, int] = _NO_CHILDREN


@dataclass(frozen=True)
class CoverageFacts:
    """What the coverage detectors compare: uncovered changed lines, totals now and before."""

    uncovered_changed: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    changed_statements: int = 0
    total_now: float | None = None  # percent
    total_before: float | None = None
    map_commit: str = ""
    before_commit: str = ""


@dataclass(frozen=True)
class Confirmation:
    """Evidence gathered by re-running suspects in a fresh pytest process."""

    durations: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # call ns per run
    alone: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # outcomes run alone
    in_order: Mapping[str, str] = field(default_factory=dict)  # outcome after its predecessors
    errors: tuple[str, ...] = ()  # re-runs that could not be made, one line each


@dataclass(frozen=True)
class AnomalyBaton:
    request: DetectRequest
    baseline_runs: tuple[int, ...] = ()
    baseline_commit: str = ""
    current: tuple[TestObservation, ...] = ()
    history: Mapping[str, tuple[PastResult, ...]] = field(default_factory=dict)  # newest first
    confirmation: Confirmation = Confirmation()
    coverage: CoverageFacts = CoverageFacts()
    found: tuple[Anomaly, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()  # after aggregation
    stored: int = 0
    notes: tuple[str, ...] = ()  # things a detector could not do, for the summary
    # Production spans of the run and their baseline (a production.ProductionFacts), if any.
    production: object = None
    # The stored rolling-baseline rows `history` was read from (baseline.load_history), kept
    # for the store beat to extend as text.
    baseline_rows: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
