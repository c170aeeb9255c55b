"""OTLP JSON lines (the Collector's file exporter: one ExportTraceServiceRequest per line).

A hand-written walk over `json.loads` output rather than protobuf's json_format: it is the
per-span hot path of every ingest, and the generic protobuf route is several times slower.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from agent.phases.telemetry.raw import Extracted, RawEvent
from agent.records import AttrValue, EventSource, SpanStatus

_STATUS: dict[object, SpanStatus] = {
    0: SpanStatus.UNSET,
    1: SpanStatus.OK,
    2: SpanStatus.ERROR,
    "STATUS_CODE_UNSET": SpanStatus.UNSET,
    "STATUS_CODE_OK": SpanStatus.OK,
    "STATUS_CODE_ERROR": SpanStatus.ERROR,
}
_HEX = frozenset("0123456789abcdef")
UNKNOWN_SERVICE = "unknown_service"


def parse_request(obj: dict[str, Any], out: list[Extracted]) -> int:
    """Append the spans of one request to `out`; returns how many spans were malformed."""
    bad = 0
    resource_spans = obj.get("resourceSpans")
    if not isinstance(resource_spans, list):
        raise ValueError("resourceSpans is not a list")
    for rs in resource_spans:
        resource = rs.get("resource") or {}
        res_attrs = attributes(resource.get("attributes"))
        service = str(res_attrs.get("service.name") or UNKNOWN_SERVICE)
        version = str(res_attrs.get("service.version") or "")
        scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ()
        for scope in scopes:
            for span in scope.get("spans") or ():
                try:
                    out.append(span_event(span, service, version))
                except (KeyError, TypeError, ValueError, AttributeError):
                    bad += 1  # one bad span does not spoil the rest of the request
    return bad


def span_event(span: dict[str, Any], service: str, version: str) -> RawEvent:
    name = span["name"]
    if not isinstance(name, str):
        raise TypeError("span name is not a string")
    start = int(span["startTimeUnixNano"])
    end = int(span.get("endTimeUnixNano") or start)
    status = span.get("status")
    code = _STATUS.get(status.get("code", 0), SpanStatus.UNSET) if status else SpanStatus.UNSET
    exc_type = exc_message = exc_stack = ""
    for event in span.get("events") or ():
        if event.get("name") == "exception":
            ev = attributes(event.get("attributes"))
            exc_type = str(ev.get("exception.type", ""))
            exc_message = str(ev.get("exception.message", ""))
            exc_stack = str(ev.get("exception.stacktrace", ""))
    return RawEvent(
        EventSource.SPAN,
        service,
        version,
        name,
        start,
        max(0, end - start),
        code,
        hex_id(span.get("traceId"), 32),
        hex_id(span.get("spanId"), 16),
        hex_id(span.get("parentSpanId"), 16),
        attributes(span.get("attributes")),
        exc_type,
        exc_message,
        exc_stack,
    )


def hex_id(value: object, width: int) -> str:
    """Ids as lower-case hex; OTLP/JSON writes hex, protobuf's JSON mapping writes base64."""
    if not value:
        return ""
    if not isinstance(value, str):
        raise TypeError("id is not a string")
    if len(value) == width:
        text = value.lower()
        if _HEX.issuperset(text):
            return text
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"id {value!r} is neither hex nor base64") from None
    if len(raw) * 2 != width:
        raise ValueError(f"id {value!r} has {len(raw)} bytes")
    return raw.hex()


def attributes(key_values: object) -> dict[str, AttrValue]:
    """OTLP KeyValue list → plain dict; arrays join with commas, key-value lists become JSON."""
    out: dict[str, AttrValue] = {}
    if not key_values:
        return out
    for kv in key_values:  # type: ignore[attr-defined]
        value = kv.get("value")
        if value:
            out[kv["key"]] = any_value(value)
    return out


def any_value(value: dict[str, Any]) -> AttrValue:
    for kind, inner in value.items():
        convert = _CONVERT.get(kind)
        if convert is not None:
            return convert(inner)
    return ""


def _array(inner: dict[str, Any]) -> AttrValue:
    return ",".join(str(any_value(v)) for v in inner.get("values") or ())


def _kvlist(inner: dict[str, Any]) -> AttrValue:
    return json.dumps(attributes(inner.get("values")), sort_keys=True)


def _bool(inner: object) -> AttrValue:
    if isinstance(inner, str):
        return inner.lower() == "true"
    return bool(inner)


_CONVERT: dict[str, Callable[[Any], AttrValue]] = {
    "stringValue": str,
    "intValue": int,  # a string in OTLP/JSON (int64), a number from some writers
    "doubleValue": float,
    "boolValue": _bool,
    "arrayValue": _array,
    "kvlistValue": _kvlist,
    "bytesValue": str,  # already base64 text
}
