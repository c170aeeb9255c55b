"""What each test did, as a small picklable record, in any process that runs tests."""

from __future__ import annotations

import functools
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from agent.outcomes import next_outcome

# The attribute on teardown reports that carries a test's record to the controller (pytest
# serialises unknown report attributes across the xdist boundary).
REPORT_ATTR = "selfheal_test"

# Our own generator: drawing ids from the global `random` would move the state a test suite
# seeded (random.seed in a fixture or conftest), so its tests would see other numbers with the
# plugin on, and suites that re-seed before every test would hand out the same id twice.
RNG = random.Random()


def new_span_id() -> int:
    return RNG.getrandbits(64) or 1


def new_trace_id() -> int:
    return RNG.getrandbits(128) or 1


@dataclass(frozen=True)
class RunInfo:
    """Facts about the run every process stamps on its spans (the controller computes them)."""

    root: str
    commit: str
    dirty: bool
    env_key: str
    trace_id: int
    session_span_id: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "commit": self.commit,
            "dirty": self.dirty,
            "env_key": self.env_key,
            "trace_id": f"{self.trace_id:032x}",
            "session_span_id": f"{self.session_span_id:016x}",
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> RunInfo:
        return cls(
            str(data["root"]),
            str(data["commit"]),
            bool(data["dirty"]),
            str(data["env_key"]),
            int(data["trace_id"], 16),
            int(data["session_span_id"], 16),
        )


class RecordedTest(NamedTuple):
    """One finished test: enough to make its span later, in another process if need be."""

    nodeid: str
    name: str
    path: str  # posix, relative to the rootdir
    line: int  # 1-based
    thresholds: tuple[tuple[str, float], ...]  # from the selfheal marker
    worker: str
    span_id: int
    start_ns: int
    end_ns: int
    setup_ns: int
    call_ns: int
    teardown_ns: int
    outcome: str
    failure: tuple[str, str, str] | None  # exception type, message, stack
    children: tuple[dict[str, Any], ...]  # the app's spans, as event JSON (records.to_json)

    def to_wire(self) -> list[Any]:
        """Plain lists and scalars (xdist's serialiser refuses named tuples)."""
        return [
            *self[:4],
            [list(t) for t in self.thresholds],
            *self[5:13],
            list(self.failure) if self.failure else None,
            list(self.children),
        ]

    @classmethod
    def from_wire(cls, data: list[Any]) -> RecordedTest:
        if not isinstance(data, list) or len(data) != len(cls._fields):
            raise ValueError(f"expected a list of {len(cls._fields)} fields")
        failure = data[13]
        return cls._make(
            [
                *data[:4],
                tuple((str(k), float(v)) for k, v in data[4]),
                *data[5:13],
                (str(failure[0]), str(failure[1]), str(failure[2])) if failure else None,
                tuple(data[14]),
            ]
        )


@functools.lru_cache(maxsize=4096)
def _posix(path: str) -> str:
    """A test file's path in posix form; cached, since a module's tests share one path."""
    return Path(path).as_posix()


def _thresholds(item: pytest.Item) -> tuple[tuple[str, float], ...]:
    marker = item.get_closest_marker("selfheal")
    if marker is None:
        return ()
    return tuple((k, float(marker.kwargs[k])) for k in ("ratio", "floor_ms") if k in marker.kwargs)


@dataclass
class _Test:
    """The test running now: its span's id and start, and what its reports said so far."""

    item: pytest.Item
    span_id: int
    start_ns: int
    token: Any  # the app-span context token, when the app uses OpenTelemetry
    phases: dict[str, int] = field(default_factory=dict)
    outcome: str = "passed"
    failure: tuple[str, str, str] | None = None


Sink = Callable[[RecordedTest, pytest.TestReport], None]


class Recorder:
    """Registered in every process that runs tests (xdist workers or the single process).

    This runs around every test of the suite, so its cost is the plugin's cost: three plain
    hooks, one open test at a time (a process runs its tests one after another), and a record
    of plain values handed to `sink` at teardown. Spans are made from the records elsewhere
    (see spans.py), usually in the sidecar process. When the code under test uses
    OpenTelemetry, each test's span context is current while it runs (a preset span id under
    the session span), so the app's spans become its children (see appspans.py).
    """

    def __init__(self, info: RunInfo, worker: str, sink: Sink, coverage: Any = None) -> None:
        self.info = info
        self.worker = worker
        self.sink = sink
        self.coverage = coverage  # agent.coverage_map.Collector or None
        self.app: Any = None  # appspans.AppSpans once the app has imported OpenTelemetry
        self._items: dict[str, pytest.Item] = {}
        self._open: _Test | None = None
        self._excinfo: dict[str, pytest.ExceptionInfo[BaseException]] = {}

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._items = {item.nodeid: item for item in session.items}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        # Only logged runs start here: the sampler's confirming re-runs (log=False) do not,
        # so they never become part of the run.
        item = self._items.get(nodeid)
        if item is None:
            return
        if self._open is not None:  # the previous test never reached teardown (interrupted)
            self._close()
        if self.app is None and "opentelemetry.trace" in sys.modules:
            from pytest_selfheal.appspans import AppSpans

            self.app = AppSpans(self.info.trace_id)
        span_id = new_span_id()
        token = self.app.enter(span_id) if self.app is not None else None
        self._open = _Test(item, span_id, time.time_ns(), token)
        if self.coverage is not None:
            # The coverage context stays on this test until the next one starts: switching
            # costs a flush of coverage.py's data, and between tests only pytest runs.
            self.coverage.switch(nodeid)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        # The report does not carry the exception object; keep it until the report says
        # whether it counts as a failure (an xfail or a skip does not).
        if call.excinfo is not None and self._open is not None:
            self._excinfo[call.when] = call.excinfo

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test = self._open
        if test is None or report.nodeid != test.item.nodeid:
            return
        test.phases[report.when] = int(report.duration * 1e9)
        test.outcome = next_outcome(test.outcome, report)
        if report.failed and test.failure is None and report.when in self._excinfo:
            test.failure = _exception(self._excinfo[report.when])
        if report.when != "teardown":
            return
        end_ns = time.time_ns()
        children = tuple(self.app.drain()) if self.app is not None else ()
        self._close()
        # tryfirst: in an xdist worker the sink attaches the record before xdist sends it.
        self.sink(self._record(test, end_ns, children), report)

    def _close(self) -> None:
        if self._open is not None:
            if self.app is not None and self._open.token is not None:
                self.app.leave(self._open.token)
            self._open = None
            self._excinfo.clear()

    def _record(
        self, test: _Test, end_ns: int, children: tuple[dict[str, Any], ...]
    ) -> RecordedTest:
        item, phases = test.item, test.phases
        path, line, _ = item.location
        return RecordedTest(
            item.nodeid,
            item.name,
            _posix(path),
            (line or 0) + 1,
            _thresholds(item),
            self.worker,
            test.span_id,
            test.start_ns,
            end_ns,
            phases.get("setup", 0),
            phases.get("call", 0),
            phases.get("teardown", 0),
            test.outcome,
            test.failure,
            children,
        )


def _exception(excinfo: pytest.ExceptionInfo[BaseException]) -> tuple[str, str, str]:
    exc = excinfo.value
    cls = type(exc)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    stack = "".join(traceback.format_exception(cls, exc, excinfo.tb))
    return name, str(exc)[:2000], stack[-20000:]
