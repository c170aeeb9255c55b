"""OTLP JSON lines (the Collector's file exporter: one ExportTraceServiceRequest per line).

A hand-written walk over `json.loads` output rather than protobuf's json_format: it is the
per-span hot path of every ingest, and the generic protobuf route is several times slower.
Span attributes stay an OTLP KeyValue list until something asks for them (see RawEvent).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from agent.phases.telemetry.anyvalue import LineRef, attributes
from agent.phases.telemetry.raw import RawEvent
from agent.records import EventSource, SpanStatus

_STATUS: dict[object, SpanStatus] = {
    0: SpanStatus.UNSET,
    1: SpanStatus.OK,
    2: SpanStatus.ERROR,
    "STATUS_CODE_UNSET": SpanStatus.UNSET,
    "STATUS_CODE_OK": SpanStatus.OK,
    "STATUS_CODE_ERROR": SpanStatus.ERROR,
}
UNKNOWN_SERVICE = "unknown_service"
_SPAN_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


class OtlpParser:
    """Reads OTLP JSON requests for one ingest.

    Attributes are decoded at once only for the first `eager` spans of each operation (their
    code location names the operation's place in the metrics) and for spans that recorded an
    exception (the signature may need it); other spans keep a reference into their line.
    """

    def __init__(self, eager: int = 3, max_operations: int = 100_000) -> None:
        self.eager = eager
        self.max_operations = max_operations
        self._seen: dict[str, dict[str, int]] = {}  # service -> operation -> spans decoded
        self._operations = 0

    def parse(self, obj: dict[str, Any], out: list[RawEvent], line: bytes | None = None) -> int:
        """Append the spans of one request to `out`; returns how many spans were malformed."""
        bad = 0
        resource_spans = obj.get("resourceSpans")
        if not isinstance(resource_spans, list):
            raise ValueError("resourceSpans is not a list")
        ref = LineRef(line) if line is not None else None
        append = out.append
        for r, rs in enumerate(resource_spans):
            resource = rs.get("resource") or {}
            res_attrs = attributes(resource.get("attributes"))
            service = str(res_attrs.get("service.name") or UNKNOWN_SERVICE)
            version = str(res_attrs.get("service.version") or "")
            seen = self._seen.setdefault(service, {})
            scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ()
            for s, scope in enumerate(scopes):
                for k, span in enumerate(scope.get("spans") or ()):
                    try:
                        event = span_event(span, service, version)
                    except _SPAN_ERRORS:
                        bad += 1  # one bad span does not spoil the rest of the request
                        continue
                    if (
                        ref is not None
                        and event.exception is None
                        and seen.get(event.operation, 0) >= self.eager
                    ):
                        event._attrs = (ref, r, s, k)
                    else:
                        self._count(seen, event.operation)
                    append(event)
        return bad

    def _count(self, seen: dict[str, int], operation: str) -> None:
        if operation not in seen:
            self._operations += 1
            if self._operations > self.max_operations:  # bounded: start counting afresh
                self._seen.clear()
                self._operations = 1
        seen[operation] = seen.get(operation, 0) + 1


def parse_request(obj: dict[str, Any], out: list[RawEvent]) -> int:
    """Append the spans of one request to `out`, attributes decoded; returns the bad spans."""
    return OtlpParser().parse(obj, out)


def span_event(span: dict[str, Any], service: str, version: str) -> RawEvent:
    """One span, its attributes decoded (an OtlpParser may swap them for a line reference)."""
    get = span.get
    name = span["name"]
    if type(name) is not str:
        raise TypeError("span name is not a string")
    start = int(span["startTimeUnixNano"])
    end = int(get("endTimeUnixNano") or start)
    status = get("status")
    code = _STATUS.get(status.get("code", 0), SpanStatus.UNSET) if status else SpanStatus.UNSET
    # Ids of the expected width are taken as they are (the hot path); others go to hex_id.
    trace_id = get("traceId") or ""
    if type(trace_id) is not str or len(trace_id) != 32:
        trace_id = hex_id(trace_id, 32)
    span_id = get("spanId") or ""
    if type(span_id) is not str or len(span_id) != 16:
        span_id = hex_id(span_id, 16)
    parent_id = get("parentSpanId") or ""
    if type(parent_id) is not str or len(parent_id) != 16:
        parent_id = hex_id(parent_id, 16)
    key_values = get("attributes")
    if key_values is not None and type(key_values) is not list:
        raise TypeError("span attributes are not a list")
    event = RawEvent(
        EventSource.SPAN,
        service,
        version,
        name,
        start,
        end - start if end > start else 0,
        code,
        trace_id,
        span_id,
        parent_id,
        key_values,
    )
    events = get("events")
    if events:
        event.exception = _exception(events)
    return event


def _exception(events: list[dict[str, Any]]) -> tuple[str, str, str] | None:
    """The last `exception` span event (OTel records one per raised exception)."""
    found = None
    for item in events:
        if item.get("name") == "exception":
            ev = attributes(item.get("attributes"))
            found = (
                str(ev.get("exception.type", "")),
                str(ev.get("exception.message", "")),
                str(ev.get("exception.stacktrace", "")),
            )
    return found if found and found[0] else None


def hex_id(value: object, width: int) -> str:
    """Ids as lower-case hex; OTLP/JSON writes hex, protobuf's JSON mapping writes base64."""
    if not value:
        return ""
    if not isinstance(value, str):
        raise TypeError("id is not a string")
    if len(value) == width:
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"id {value!r} is neither hex nor base64") from None
    if len(raw) * 2 != width:
        raise ValueError(f"id {value!r} has {len(raw)} bytes")
    return raw.hex()
