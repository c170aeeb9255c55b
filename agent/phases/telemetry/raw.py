"""The intermediate form of one span or log line between extraction and normalisation."""

from __future__ import annotations

from agent.records import AttrValue, EventSource, SpanStatus, TelemetryEvent


class RawEvent:
    """Fields as read from a source, before code locations, signatures and parents are settled.

    A plain slotted class, not a frozen dataclass: one is made per span on the hot path and
    lives only until the normalise beat turns it into a TelemetryEvent.
    """

    __slots__ = (
        "attributes",
        "duration_ns",
        "exc_message",
        "exc_stack",
        "exc_type",
        "operation",
        "parent_span_id",
        "service",
        "source",
        "span_id",
        "start_ns",
        "status",
        "trace_id",
        "version",
    )

    def __init__(  # noqa: PLR0917 - positional: one call per span on the hot path
        self,
        source: EventSource,
        service: str,
        version: str,
        operation: str,
        start_ns: int,
        duration_ns: int,
        status: SpanStatus,
        trace_id: str,
        span_id: str,
        parent_span_id: str,
        attributes: dict[str, AttrValue],
        exc_type: str = "",
        exc_message: str = "",
        exc_stack: str = "",
    ) -> None:
        self.source = source
        self.service = service
        self.version = version
        self.operation = operation
        self.start_ns = start_ns
        self.duration_ns = duration_ns
        self.status = status
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.attributes = attributes
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.exc_stack = exc_stack


# What extraction yields: raw spans and log lines, or spool events already in record form.
Extracted = RawEvent | TelemetryEvent
