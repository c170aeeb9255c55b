"""The spans of instrumented code under test become children of the running test's span."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from agent import records
from agent.otel import span_to_event
from pytest_selfheal.spans import PresetIds, parent_context


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


def hook_global_provider(collector: ChildCollector) -> str:
    """Let the app's own spans reach us: join the user's SDK provider, or install one.

    The test spans come from our private provider, so the user's exporters never see them.
    When user code has already set an SDK TracerProvider, our collector is added to it (their
    exporters keep working). When nothing is set by the time tests run, instrumented code would
    produce no spans at all, so we install an SDK provider carrying only our collector; a later
    `set_tracer_provider` by the user is then refused by OpenTelemetry (it logs a warning), which
    is why this happens lazily, at the first test after the app imported OpenTelemetry.
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


class AppSpans:
    """Made by the recorder at the first test after the app imported OpenTelemetry (a suite
    that never does pays nothing for it)."""

    def __init__(self, trace_id: int) -> None:
        self.trace_id = trace_id
        self.collector = ChildCollector(trace_id)
        self.hooked = hook_global_provider(self.collector)

    def enter(self, span_id: int) -> Any:
        """The test's span context becomes current; spans ended between tests are dropped."""
        self.collector.drain()
        return otel_context.attach(parent_context(self.trace_id, span_id))

    def leave(self, token: Any) -> None:
        otel_context.detach(token)

    def drain(self) -> list[dict[str, Any]]:
        """The test's child spans, as event JSON (they may travel to another process)."""
        spans = self.collector.drain()
        return [records.to_json(span_to_event(s, records.EventSource.SPAN)) for s in spans]
