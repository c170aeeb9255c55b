"""The working form of one event inside the telemetry phase, and its conversion to a record."""

from __future__ import annotations

from typing import Any

from agent.otel import NO_LOCATION, shared_code_location
from agent.phases.telemetry.anyvalue import LineRef, SpanRef
from agent.phases.telemetry.anyvalue import attributes as convert_attributes
from agent.records import AttrValue, CodeLocation, EventSource, SpanStatus, TelemetryEvent

OpKey = tuple[str, str, str]  # (service, operation, version)
Exception3 = tuple[str, str, str]  # (type, message, stack trace)


class RawEvent:
    """One span or log line: extraction fills the read fields, normalisation the derived ones.

    A mutable slotted class, not the frozen TelemetryEvent: one is made per span on the hot
    path, so its constructor sets as few slots as it can. What only some events need is made
    on first use: the attribute dict (from the OTLP KeyValue list), the code location, and the
    TelemetryEvent record itself (`to_event`), built only for events that are stored.
    """

    __slots__ = (
        "_attrs",
        "_location",
        "duration_ns",
        "exception",
        "key",
        "operation",
        "parent_key",
        "parent_span_id",
        "service",
        "signature",
        "source",
        "span_id",
        "start_ns",
        "status",
        "trace_id",
        "version",
    )
    _location: CodeLocation
    key: OpKey

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
        attrs: dict[str, AttrValue] | SpanRef | list[Any] | None,
        exception: Exception3 | None = None,
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
        # A dict, or what it is made from on first use: an OTLP KeyValue list, or a reference
        # to the span in its line (see LineRef).
        self._attrs = attrs
        self.exception = exception
        self.signature = ""
        self.parent_key: OpKey | None = None
        # Unset until needed: `key` (service, operation, version) is set by normalisation,
        # `_location` on first read.

    @property
    def attributes(self) -> dict[str, AttrValue]:
        attrs = self._attrs
        if isinstance(attrs, dict):
            return attrs
        if isinstance(attrs, tuple) and isinstance(attrs[0], LineRef):
            made = attrs[0].span_attributes(attrs[1], attrs[2], attrs[3])
        else:
            made = convert_attributes(attrs)
        self._attrs = made
        return made

    @property
    def line_order(self) -> int:
        """Groups events of one line together (0 for events that do not refer to a line)."""
        attrs = self._attrs
        return id(attrs[0]) if isinstance(attrs, tuple) and isinstance(attrs[0], LineRef) else 0

    @property
    def attributes_at_hand(self) -> bool:
        """Whether reading `attributes` costs no decoding of its line again."""
        attrs = self._attrs
        return not (isinstance(attrs, tuple) and isinstance(attrs[0], LineRef))

    @property
    def location(self) -> CodeLocation:
        """Where the code is, under the old or the new semantic-convention names."""
        try:
            return self._location
        except AttributeError:
            self._location = shared_code_location(self.attributes)
            return self._location

    @location.setter
    def location(self, value: CodeLocation) -> None:
        self._location = value

    @property
    def exc_type(self) -> str:
        return self.exception[0] if self.exception else ""

    @property
    def exc_message(self) -> str:
        return self.exception[1] if self.exception else ""

    @property
    def exc_stack(self) -> str:
        return self.exception[2] if self.exception else ""

    # The record's names for the same fields: detection reads handed-on events of either kind.
    exception_message = exc_message

    @property
    def exception_signature(self) -> str:
        return self.signature

    @property
    def parent_operation(self) -> str:
        return self.parent_key[1] if self.parent_key is not None else ""

    @staticmethod
    def from_record(event: TelemetryEvent) -> RawEvent:
        return RecordEvent(event)

    def to_event(self) -> TelemetryEvent:
        """The normalised record."""
        return TelemetryEvent(
            source=self.source,
            service=self.service,
            operation=self.operation,
            start_ns=self.start_ns,
            duration_ns=self.duration_ns,
            status=self.status,
            version=self.version,
            trace_id=self.trace_id,
            span_id=self.span_id,
            parent_span_id=self.parent_span_id,
            parent_operation=self.parent_operation,
            location=self.location,
            exception_type=self.exc_type,
            exception_message=self.exc_message,
            exception_stacktrace=self.exc_stack,
            exception_signature=self.signature,
            attributes=self.attributes,
        )


class RecordEvent(RawEvent):
    """An event that arrived as a record (spool line, plugin, receiver): reused if unchanged."""

    __slots__ = ("record",)

    def __init__(self, event: TelemetryEvent) -> None:
        # RawEvent.__init__'s work without the call: one of these is made per span received.
        self.source = event.source
        self.service = event.service
        self.version = event.version
        self.operation = event.operation
        self.start_ns = event.start_ns
        self.duration_ns = event.duration_ns
        self.status = event.status
        self.trace_id = event.trace_id
        self.span_id = event.span_id
        self.parent_span_id = event.parent_span_id
        self._attrs = event.attributes
        self.exception = (
            (event.exception_type, event.exception_message, event.exception_stacktrace)
            if event.exception_type
            else None
        )
        location = event.location
        if location is not NO_LOCATION and location != NO_LOCATION:
            self._location = location
        self.signature = event.exception_signature
        self.parent_key = (
            (event.service, event.parent_operation, event.version)
            if event.parent_operation
            else None
        )
        self.record = event

    def to_event(self) -> TelemetryEvent:
        record = self.record
        if (
            record.parent_operation == self.parent_operation
            and record.location == self.location
            and record.exception_signature == self.signature
        ):
            return record
        return super().to_event()
