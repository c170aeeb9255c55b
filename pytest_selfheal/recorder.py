"""Each test becomes an OpenTelemetry span (with its app's spans as children), in any process."""

from __future__ import annotations

import functools
import random
import sys
import threading
import time
import traceback
from contextvars import Token
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from agent import records
from agent.otel import deepest_frame, span_to_event
from agent.outcomes import next_outcome

# The attribute on teardown reports that carries a test's events to the controller (pytest
# serialises unknown report attributes across the xdist boundary).
REPORT_ATTR = "selfheal_events"
SERVICE = "pytest"


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


class ChildCollector(SpanProcessor):
    """Keeps the app's spans that belong to this run's trace, until the current test ends."""

    def __init__(self, trace_id: int) -> None:
        self.trace_id = trace_id
        self._lock = threading.Lock()
        self._spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_id == self.trace_id:
            with self._lock:
                self._spans.append(span)

    def drain(self) -> list[ReadableSpan]:
        with self._lock:
            spans, self._spans = self._spans, []
        return spans


def resource(info: RunInfo) -> Resource:
    return Resource.create(
        {
            "service.name": SERVICE,
            "service.version": info.commit[:12],
            "process.runtime.name": sys.implementation.name,
            "process.runtime.version": ".".join(map(str, sys.version_info[:3])),
            "os.type": sys.platform,
        }
    )


def hook_global_provider(collector: ChildCollector) -> str:
    """Let the app's own spans reach us: join the user's SDK provider, or install one.

    The test spans come from our private provider, so the user's exporters never see them.
    When user code has already set an SDK TracerProvider, our collector is added to it (their
    exporters keep working). When nothing is set by the time tests run, instrumented code would
    produce no spans at all, so we install an SDK provider carrying only our collector; a later
    `set_tracer_provider` by the user is then refused by OpenTelemetry (it logs a warning), which
    is why this happens lazily, at the first test, after conftest files and imports had their turn.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(collector)
        return "joined"
    if isinstance(current, trace.ProxyTracerProvider):
        provider = TracerProvider(id_generator=PresetIds())  # not the suite's `random`
        provider.add_span_processor(collector)
        trace.set_tracer_provider(provider)
        return "installed"
    return "foreign"  # another API implementation: we cannot see its spans


def _context_span(trace_id: int, span_id: int) -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(trace_id, span_id, True, TraceFlags(TraceFlags.SAMPLED)))


_OK = trace.Status(trace.StatusCode.OK)  # immutable; one object instead of one per test


@functools.lru_cache(maxsize=4096)
def _posix(path: str) -> str:
    """A test file's path in posix form; cached, since a module's tests share one path."""
    return Path(path).as_posix()


# Our own generator: drawing ids from the global `random` would move the state a test suite
# seeded (random.seed in a fixture or conftest), so its tests would see other numbers with the
# plugin on, and suites that re-seed before every test would hand out the same id twice.
_RNG = random.Random()


class PresetIds(IdGenerator):
    """Span ids chosen before their span is made (see Recorder); random ids otherwise."""

    def __init__(self) -> None:
        self.preset = 0

    def generate_span_id(self) -> int:
        return self.preset or _RNG.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return _RNG.getrandbits(128) or 1


@dataclass
class _Test:
    """One test of this process: its span's id and times, and what its reports said."""

    item: pytest.Item
    span_id: int
    start_ns: int
    token: Token[Context]
    phases: dict[str, int] = field(default_factory=dict)
    outcome: str = "passed"
    failure: tuple[str, str, str] | None = None
    end_ns: int = 0
    children: list[ReadableSpan] = field(default_factory=list)


class Recorder:
    """Registered in every process that runs tests (xdist workers or the single process).

    This runs around every test of the suite, so its cost is the plugin's cost. While a test
    runs, only its span context is current (a preset span id under the session span), so the
    app's spans become its children; its SDK span is made when its teardown is reported (in an
    xdist worker, whose events travel with that report) or, in a single process, for all tests
    at once when the session ends — the same span, with the recorded start and end times, for a
    fraction of the per-test cost. Plain hooks rather than wrappers, one open test at a time (a
    process runs its tests one after another).
    """

    def __init__(
        self, info: RunInfo, worker: str, coverage: Any = None, *, batch: bool = False
    ) -> None:
        self.info = info
        self.batch = batch  # in-process controller: spans made at the end, events without JSON
        self.worker = worker
        self.coverage = coverage  # agent.coverage_map.Collector or None
        self.collector = ChildCollector(info.trace_id)
        self._ids = PresetIds()
        self._provider = TracerProvider(resource=resource(info), id_generator=self._ids)
        self._tracer = self._provider.get_tracer("pytest_selfheal")
        self._parent = trace.set_span_in_context(_context_span(info.trace_id, info.session_span_id))
        self._hooked = ""
        self._items: dict[str, pytest.Item] = {}
        self._open: _Test | None = None
        self._excinfo: dict[str, pytest.ExceptionInfo[BaseException]] = {}
        self._done: list[_Test] = []

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
        if not self._hooked:
            self._hooked = hook_global_provider(self.collector)
        self.collector.drain()  # spans ended between tests belong to no test
        span_id = _RNG.getrandbits(64) or 1
        current = trace.set_span_in_context(_context_span(self.info.trace_id, span_id))
        self._open = _Test(item, span_id, time.time_ns(), otel_context.attach(current))
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
            test.failure = self._exception(self._excinfo[report.when])
        if report.when != "teardown":
            return
        test.end_ns = time.time_ns()
        test.children = self.collector.drain()
        self._close()
        if self.batch:
            self._done.append(test)
        else:  # an xdist worker: the events travel with the report (tryfirst: before xdist)
            setattr(report, REPORT_ATTR, [records.to_json(e) for e in self._events(test)])

    def _close(self) -> None:
        if self._open is not None:
            otel_context.detach(self._open.token)
            self._open = None
            self._excinfo.clear()

    def collect(self) -> list[records.TelemetryEvent]:
        """The spans of the tests finished so far (batch mode), as events, oldest first."""
        done, self._done = self._done, []
        return [event for test in done for event in self._events(test)]

    def _exception(self, excinfo: pytest.ExceptionInfo[BaseException]) -> tuple[str, str, str]:
        exc = excinfo.value
        cls = type(exc)
        name = (
            cls.__qualname__
            if cls.__module__ == "builtins"
            else f"{cls.__module__}.{cls.__qualname__}"
        )
        stack = "".join(traceback.format_exception(cls, exc, excinfo.tb))
        return name, str(exc)[:2000], stack[-20000:]

    def _span(self, test: _Test) -> Any:
        """The test's SDK span, under the id its children already name as their parent."""
        self._ids.preset = test.span_id
        try:
            span = self._tracer.start_span(
                test.item.name, context=self._parent, start_time=test.start_ns
            )
        finally:
            self._ids.preset = 0
        span.set_attributes(self._attributes(test))
        if test.failure is not None:
            name, message, stack = test.failure
            span.add_event(
                "exception",
                {
                    "exception.type": name,
                    "exception.message": message,
                    "exception.stacktrace": stack,
                },
                timestamp=test.end_ns,
            )
            span.set_status(trace.Status(trace.StatusCode.ERROR, message[:200]))
        elif test.outcome in ("passed", "xpassed", "xfailed", "skipped"):
            span.set_status(_OK)
        span.end(end_time=test.end_ns)
        return span

    def _attributes(self, test: _Test) -> dict[str, Any]:
        item, phases = test.item, test.phases
        path, line, _ = item.location
        attrs: dict[str, Any] = {
            "selfheal.test.nodeid": item.nodeid,
            "selfheal.test.outcome": test.outcome,
            "selfheal.test.setup_ns": phases.get("setup", 0),
            "selfheal.test.call_ns": phases.get("call", 0),
            "selfheal.test.teardown_ns": phases.get("teardown", 0),
            "selfheal.test.worker": self.worker,
            "selfheal.git.dirty": self.info.dirty,
            "vcs.ref.head.revision": self.info.commit,
            "selfheal.env_key": self.info.env_key,
            "code.file.path": _posix(path),
            "code.line.number": (line or 0) + 1,
            "code.function.name": item.name,
        }
        marker = item.get_closest_marker("selfheal")
        if marker is not None:
            for key, attr in (
                ("ratio", "selfheal.threshold.ratio"),
                ("floor_ms", "selfheal.threshold.floor_ms"),
            ):
                if key in marker.kwargs:
                    attrs[attr] = float(marker.kwargs[key])
        return attrs

    def signature(self, exc_type: str, stack: str) -> str:
        """type@path:function of the deepest frame in project code, path relative to the root."""
        frame = deepest_frame(stack, self.info.root)
        if frame.startswith(self.info.root):
            frame = frame[len(self.info.root) :].lstrip("/\\")
        return f"{exc_type}@{Path(frame).as_posix()}" if frame else exc_type

    def _events(self, test: _Test) -> list[records.TelemetryEvent]:
        test_event = span_to_event(self._span(test), records.EventSource.TEST)
        if test.failure is not None:
            signature = self.signature(test.failure[0], test.failure[2])
            test_event = replace(test_event, exception_signature=signature)
        children = [span_to_event(s, records.EventSource.SPAN) for s in test.children]
        return [*children, test_event]

    def shutdown(self) -> None:
        self._provider.shutdown()
