"""The hooks around every test: what each test did, as a small record, in any test process."""

from __future__ import annotations

import functools
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.outcomes import next_outcome
from pytest_selfheal.runfacts import RecordedTest, RunInfo, new_span_id


@functools.lru_cache(maxsize=4096)
def _posix(path: str) -> str:
    """A test file's path in posix form; cached, since a module's tests share one path."""
    return Path(path).as_posix()


def _uses_marker(items: list[pytest.Item], name: str) -> bool:
    """Does any test, or any collector above one, carry the marker? Each node once."""
    seen: set[int] = set()
    for item in items:
        node: Any = item
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            if any(mark.name == name for mark in node.own_markers):
                return True
            node = node.parent
    return False


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
        self._marked = True

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._items = {item.nodeid: item for item in session.items}
        # Most suites never use the selfheal marker: then no test looks for it (a lookup
        # walks each test's chain of collectors).
        self._marked = _uses_marker(session.items, "selfheal")

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
            _thresholds(item) if self._marked else (),
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
