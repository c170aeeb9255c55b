"""The working form of one event inside the telemetry phase, and its conversion to a record."""

from __future__ import annotations

from typing import Any

from agent.otel import code_location
from agent.phases.telemetry.anyvalue import attributes as convert_attributes
from agent.records import AttrValue, CodeLocation, EventSource, SpanStatus, TelemetryEvent

NO_LOCATION = CodeLocation()
OpKey = tuple[str, str, str]  # (service, operation, version)
_NO_CODE = (None, None, None, None)
_LOCATIONS: dict[tuple[object, ...], CodeLocation] = {}
_MAX_LOCATIONS = 65_536


class RawEvent:
    """One span or log line: extraction fills the read fields, normalisation the derived ones.

    A mutable slotted class, not the frozen TelemetryEvent: one is made per span on the hot
    path. What only some events need is computed on first use: the attribute dict (from the
    OTLP KeyValue list), the code location, and the TelemetryEvent record itself (`to_event`),
    which is built only for events that are stored.
    """

    __slots__ = (
        "_attributes",
        "_key_values",
        "_location",
        "duration_ns",
        "exc_message",
        "exc_stack",
        "exc_type",
        "key",
        "operation",
        "parent_key",
        "parent_span_id",
        "record",
        "service",
        "signature",
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
        attributes: dict[str, AttrValue] | None,
        key_values: Any = None,
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
        self._attributes = attributes
        self._key_values = key_values  # an OTLP KeyValue list, converted on first use
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.exc_stack = exc_stack
        self._location: CodeLocation | None = None
        self.signature = ""
        self.key: OpKey = ("", "", "")  # (service, operation, version), set by normalisation
        self.parent_key: OpKey | None = None
        # The record this event was read from (spool, in-memory), reused when nothing changed.
        self.record: TelemetryEvent | None = None

    @property
    def attributes(self) -> dict[str, AttrValue]:
        if self._attributes is None:
            self._attributes = convert_attributes(self._key_values)
            self._key_values = None
        return self._attributes

    @property
    def location(self) -> CodeLocation:
        """Where the code is, under the old or the new semantic-convention names."""
        if self._location is None:
            self._location = location_of(self.attributes)
        return self._location

    @location.setter
    def location(self, value: CodeLocation) -> None:
        self._location = value

    @property
    def parent_operation(self) -> str:
        return self.parent_key[1] if self.parent_key is not None else ""

    @classmethod
    def from_record(cls, event: TelemetryEvent) -> RawEvent:
        raw = cls(
            event.source,
            event.service,
            event.version,
            event.operation,
            event.start_ns,
            event.duration_ns,
            event.status,
            event.trace_id,
            event.span_id,
            event.parent_span_id,
            event.attributes,
            None,
            event.exception_type,
            event.exception_message,
            event.exception_stacktrace,
        )
        if event.location != NO_LOCATION:
            raw.location = event.location
        raw.signature = event.exception_signature
        if event.parent_operation:
            raw.parent_key = (event.service, event.parent_operation, event.version)
        raw.record = event
        return raw

    def to_event(self) -> TelemetryEvent:
        """The normalised record (the one read in, when normalisation changed nothing)."""
        record = self.record
        if (
            record is not None
            and record.parent_operation == self.parent_operation
            and record.location == self.location
            and record.exception_signature == self.signature
        ):
            return record
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


def location_of(attrs: dict[str, AttrValue]) -> CodeLocation:
    """`otel.code_location`, with one shared object per distinct set of code attributes."""
    get = attrs.get
    raw = (
        get("code.function.name") or get("code.function"),
        get("code.file.path") or get("code.filepath"),
        get("code.line.number") or get("code.lineno"),
        get("code.namespace"),
    )
    if raw == _NO_CODE:
        return NO_LOCATION
    cached = _LOCATIONS.get(raw)
    if cached is None:
        if len(_LOCATIONS) >= _MAX_LOCATIONS:
            _LOCATIONS.clear()
        cached = _LOCATIONS[raw] = code_location(attrs)
    return cached
