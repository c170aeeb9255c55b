"""Test records become OpenTelemetry SDK spans under one session span, then telemetry events."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from agent import records
from agent.otel import deepest_frame, span_to_event
from pytest_selfheal.runfacts import RecordedTest, RunInfo, new_span_id, new_trace_id

SERVICE = "pytest"
SESSION = "pytest session"
THRESHOLD_ATTRS = {"ratio": "selfheal.threshold.ratio", "floor_ms": "selfheal.threshold.floor_ms"}
_OK = trace.Status(trace.StatusCode.OK)  # immutable; one object instead of one per test


class PresetIds(IdGenerator):
    """Ids chosen before their span is made (a test's children already name it as their
    parent); otherwise random, from the plugin's own generator (see runfacts.RNG)."""

    def __init__(self) -> None:
        self.span = 0
        self.trace = 0

    def generate_span_id(self) -> int:
        return self.span or new_span_id()

    def generate_trace_id(self) -> int:
        return self.trace or new_trace_id()


def parent_context(trace_id: int, span_id: int) -> Context:
    """A context whose current span is the given one, known only by its ids (sampled): spans
    started in it become its children."""
    ctx = SpanContext(trace_id, span_id, True, TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(ctx))


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


class SpanMaker:
    """Makes the run's spans with the SDK, with the ids and times the records carry."""

    def __init__(self, info: RunInfo) -> None:
        self.info = info
        self._ids = PresetIds()
        self._provider = TracerProvider(resource=resource(info), id_generator=self._ids)
        self._tracer = self._provider.get_tracer("pytest_selfheal")
        self._parent = parent_context(info.trace_id, info.session_span_id)

    def events(self, rec: RecordedTest) -> list[records.TelemetryEvent]:
        """The test's span (and its app's spans) as events, the test last."""
        event = span_to_event(self._span(rec), records.EventSource.TEST)
        if rec.failure is not None:
            signature = self.signature(rec.failure[0], rec.failure[2])
            event = replace(event, exception_signature=signature)
        children = [records.from_json(c, records.TelemetryEvent) for c in rec.children]
        return [*children, event]

    def _span(self, rec: RecordedTest) -> Any:
        self._ids.span = rec.span_id
        try:
            span = self._tracer.start_span(rec.name, context=self._parent, start_time=rec.start_ns)
        finally:
            self._ids.span = 0
        span.set_attributes(self._attributes(rec))
        if rec.failure is not None:
            name, message, stack = rec.failure
            span.add_event(
                "exception",
                {
                    "exception.type": name,
                    "exception.message": message,
                    "exception.stacktrace": stack,
                },
                timestamp=rec.end_ns,
            )
            span.set_status(trace.Status(trace.StatusCode.ERROR, message[:200]))
        elif rec.outcome in ("passed", "xpassed", "xfailed", "skipped"):
            span.set_status(_OK)
        span.end(end_time=rec.end_ns)
        return span

    def _attributes(self, rec: RecordedTest) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "selfheal.test.nodeid": rec.nodeid,
            "selfheal.test.outcome": rec.outcome,
            "selfheal.test.setup_ns": rec.setup_ns,
            "selfheal.test.call_ns": rec.call_ns,
            "selfheal.test.teardown_ns": rec.teardown_ns,
            "selfheal.test.worker": rec.worker,
            "selfheal.git.dirty": self.info.dirty,
            "vcs.ref.head.revision": self.info.commit,
            "selfheal.env_key": self.info.env_key,
            "code.file.path": rec.path,
            "code.line.number": rec.line,
            "code.function.name": rec.name,
        }
        for key, value in rec.thresholds:
            if key in THRESHOLD_ATTRS:
                attrs[THRESHOLD_ATTRS[key]] = value
        return attrs

    def signature(self, exc_type: str, stack: str) -> str:
        """type@path:function of the deepest frame in project code, path relative to the root."""
        root = self.info.root
        frame = deepest_frame(stack, root)
        if frame.startswith(root):
            frame = frame[len(root) :].lstrip("/\\")
        return f"{exc_type}@{Path(frame).as_posix()}" if frame else exc_type

    def session_parent(self) -> tuple[str, str, tuple[str, str, str]]:
        """The session span as the telemetry phase will know it: (trace, span, op key)."""
        info = self.info
        key = (SERVICE, SESSION, info.commit[:12])
        return f"{info.trace_id:032x}", f"{info.session_span_id:016x}", key

    def session(self, start_ns: int, end_ns: int, exitstatus: int, tests: int) -> Any:
        """The session span every test span names as its parent."""
        self._ids.trace, self._ids.span = self.info.trace_id, self.info.session_span_id
        try:
            span = self._tracer.start_span(SESSION, start_time=start_ns)
        finally:
            self._ids.trace = self._ids.span = 0
        span.set_attributes(
            {
                "selfheal.session.tests": tests,
                "selfheal.session.exitstatus": exitstatus,
                "vcs.ref.head.revision": self.info.commit,
                "selfheal.git.dirty": self.info.dirty,
                "selfheal.env_key": self.info.env_key,
            }
        )
        span.end(end_time=end_ns)
        # Test-run telemetry (source TEST, no node id), not an application span. The SDK's
        # tracer hands out its own Span, which is a ReadableSpan at run time.
        return span_to_event(span, records.EventSource.TEST)  # type: ignore[arg-type]

    def shutdown(self) -> None:
        self._provider.shutdown()
