"""Each test becomes an OpenTelemetry span (with its app's spans as children), in any process."""

from __future__ import annotations

import functools
import sys
import threading
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from agent import records
from agent.otel import deepest_frame, span_to_event
from agent.phases.anomaly.repeat_plugin import next_outcome

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
        provider = TracerProvider()
        provider.add_span_processor(collector)
        trace.set_tracer_provider(provider)
        return "installed"
    return "foreign"  # another API implementation: we cannot see its spans


_OK = trace.Status(trace.StatusCode.OK)  # immutable; one object instead of one per test


@functools.lru_cache(maxsize=4096)
def _posix(path: str) -> str:
    """A test file's path in posix form; cached, since a module's tests share one path."""
    return Path(path).as_posix()


class Recorder:
    """Registered in every process that runs tests (xdist workers or the single process)."""

    def __init__(
        self,
        info: RunInfo,
        worker: str,
        coverage: Any = None,
        sink: Callable[[list[records.TelemetryEvent]], None] | None = None,
    ) -> None:
        self.info = info
        self.sink = sink  # in-process controller: events are handed over without JSON
        self.worker = worker
        self.coverage = coverage  # agent.coverage_map.Collector or None
        self.collector = ChildCollector(info.trace_id)
        self._provider = TracerProvider(resource=resource(info))
        self._tracer = self._provider.get_tracer("pytest_selfheal")
        self._parent = trace.set_span_in_context(
            NonRecordingSpan(
                SpanContext(
                    info.trace_id, info.session_span_id, True, TraceFlags(TraceFlags.SAMPLED)
                )
            )
        )
        self._hooked = ""
        self.paused: Callable[[], bool] = lambda: False  # True while the sampler re-runs
        self._spans: dict[str, Any] = {}
        self._phases: dict[str, dict[str, int]] = {}
        self._failure: dict[str, tuple[str, str, str]] = {}
        self._outcome: dict[str, str] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        if self.paused():
            yield
            return
        if not self._hooked:
            self._hooked = hook_global_provider(self.collector)
        self.collector.drain()  # spans ended between tests belong to no test
        span = self._tracer.start_span(item.name, context=self._parent)
        self._spans[item.nodeid] = span
        self._phases[item.nodeid] = {}
        token = otel_context.attach(trace.set_span_in_context(span))
        if self.coverage is not None:
            self.coverage.switch(item.nodeid)
        try:
            yield
        finally:
            # The coverage context stays on this test until the next one starts: switching
            # costs a flush of coverage.py's data, and between tests only pytest runs.
            otel_context.detach(token)
            self._spans.pop(item.nodeid, None)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        if self.paused():
            return
        report: pytest.TestReport = outcome.get_result()
        self._phases.setdefault(item.nodeid, {})[report.when] = int(report.duration * 1e9)
        self._note_outcome(item.nodeid, report)
        if call.excinfo is not None and report.failed and item.nodeid not in self._failure:
            self._failure[item.nodeid] = self._exception(call.excinfo)
        if report.when == "teardown":
            events = self._finish(item)
            if self.sink is not None:
                self.sink(events)
            else:
                setattr(report, REPORT_ATTR, [records.to_json(e) for e in events])

    def _note_outcome(self, nodeid: str, report: pytest.TestReport) -> None:
        self._outcome[nodeid] = next_outcome(self._outcome.get(nodeid, "passed"), report)

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

    def _finish(self, item: pytest.Item) -> list[records.TelemetryEvent]:
        span = self._spans.get(item.nodeid)
        phases = self._phases.pop(item.nodeid, {})
        outcome = self._outcome.pop(item.nodeid, "passed")
        failure = self._failure.pop(item.nodeid, None)
        if span is None:
            return []
        self._annotate(span, item, outcome, phases)
        signature = ""
        if failure is not None:
            name, message, stack = failure
            span.add_event(
                "exception",
                {
                    "exception.type": name,
                    "exception.message": message,
                    "exception.stacktrace": stack,
                },
            )
            signature = self.signature(name, stack)
            span.set_status(trace.Status(trace.StatusCode.ERROR, message[:200]))
        elif outcome in ("passed", "xpassed", "xfailed", "skipped"):
            span.set_status(_OK)
        span.end()
        return self._events(span, signature)

    def _annotate(self, span: Any, item: pytest.Item, outcome: str, phases: dict[str, int]) -> None:
        path, line, _ = item.location
        attrs: dict[str, Any] = {
            "selfheal.test.nodeid": item.nodeid,
            "selfheal.test.outcome": outcome,
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
        span.set_attributes(attrs)

    def signature(self, exc_type: str, stack: str) -> str:
        """type@path:function of the deepest frame in project code, path relative to the root."""
        frame = deepest_frame(stack, self.info.root)
        if frame.startswith(self.info.root):
            frame = frame[len(self.info.root) :].lstrip("/\\")
        return f"{exc_type}@{Path(frame).as_posix()}" if frame else exc_type

    def _events(self, span: Any, signature: str) -> list[records.TelemetryEvent]:
        from dataclasses import replace

        test_event = span_to_event(span, records.EventSource.TEST)
        if signature:
            test_event = replace(test_event, exception_signature=signature)
        children = [span_to_event(s, records.EventSource.SPAN) for s in self.collector.drain()]
        return [*children, test_event]

    def shutdown(self) -> None:
        self._provider.shutdown()
