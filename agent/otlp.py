"""OTLP trace payloads (protobuf and JSON) to and from TelemetryEvents."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.otel import exception_signature, shared_code_location
from agent.records import AttrValue, EventSource, SpanStatus, TelemetryEvent

PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_TYPES = frozenset({"application/json"})

_STATUS = {0: SpanStatus.UNSET, 1: SpanStatus.OK, 2: SpanStatus.ERROR}
_STATUS_CODE = {SpanStatus.UNSET: 0, SpanStatus.OK: 1, SpanStatus.ERROR: 2}
# OTLP/JSON writes trace and span ids as hex, where protobuf's JSON mapping expects base64.
_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class PayloadError(ValueError):
    """A request body that is not an ExportTraceServiceRequest at all."""


@dataclass(frozen=True)
class Decoded:
    """The events of one request and how many of its spans were refused, with why."""

    events: list[TelemetryEvent]
    rejected: int = 0
    reason: str = ""


def decode_protobuf(body: bytes) -> Decoded:
    """Parse a protobuf ExportTraceServiceRequest; raise PayloadError when it is not one."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise PayloadError(f"not an OTLP protobuf trace request: {exc}") from None
    return _from_message(request)


def decode_json(body: bytes) -> Decoded:
    """Parse an OTLP/JSON ExportTraceServiceRequest (hex ids, camelCase or snake_case keys)."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("OTLP/JSON body must be an object")
    try:
        _hex_ids_to_base64(data)
        request = json_format.ParseDict(
            data, ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise PayloadError(f"not an OTLP/JSON trace request: {_one_line(exc)}") from None
    return _from_message(request)


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _hex_ids_to_base64(node: Any) -> None:
    """Rewrite id fields in place, anywhere in the tree (spans and their links)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in _ID_KEYS and isinstance(value, str):
                    item[key] = _hex_to_b64(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))


def _hex_to_b64(value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"id {value[:40]!r} is not hex") from None
    return base64.b64encode(raw).decode("ascii")


def _from_message(request: Any) -> Decoded:
    events: list[TelemetryEvent] = []
    rejected = 0
    reason = ""
    for resource_spans in request.resource_spans:
        resource = _attrs(resource_spans.resource.attributes)
        service = str(resource.get("service.name") or "unknown_service")
        version = str(resource.get("service.version") or "")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                event = _event(span, service, version)
                if isinstance(event, str):
                    rejected += 1
                    reason = reason or event
                else:
                    events.append(event)
    return Decoded(events, rejected, reason)


def _event(span: Any, service: str, version: str) -> TelemetryEvent | str:
    """The span as a record, or why it is refused. Each field is read once: every read of a
    protobuf field makes a new Python object, and this runs for every span received."""
    trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
    name = span.name
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if len(trace_id) != 16 or not any(trace_id):
        return "span with an invalid trace_id (need 16 non-zero bytes)"
    if len(span_id) != 8 or not any(span_id):
        return "span with an invalid span_id (need 8 non-zero bytes)"
    if parent_id and len(parent_id) != 8:
        return "span with an invalid parent_span_id (need 8 bytes)"
    if not name:
        return "span without a name"
    if end and end < start:
        return "span that ends before it starts"
    attrs = _attrs(span.attributes)
    location = shared_code_location(attrs)
    exc_type, exc_message, exc_stack = "", "", ""
    if len(span.events):
        for ev in span.events:
            if ev.name == "exception":
                ev_attrs = _attrs(ev.attributes)
                exc_type = str(ev_attrs.get("exception.type", ""))
                exc_message = str(ev_attrs.get("exception.message", ""))
                exc_stack = str(ev_attrs.get("exception.stacktrace", ""))
    return TelemetryEvent(
        source=EventSource.SPAN,
        service=service,
        version=version,
        operation=name,
        start_ns=start,
        duration_ns=(end or start) - start,
        status=_STATUS.get(span.status.code, SpanStatus.UNSET),
        trace_id=trace_id.hex(),
        span_id=span_id.hex(),
        parent_span_id=parent_id.hex(),
        location=location,
        exception_type=exc_type,
        exception_message=exc_message,
        exception_stacktrace=exc_stack,
        exception_signature=exception_signature(exc_type, exc_stack, location) if exc_type else "",
        attributes=attrs,
    )


_SCALARS = frozenset({"string_value", "int_value", "bool_value", "double_value"})


def _attrs(key_values: Iterable[Any]) -> dict[str, AttrValue]:
    out: dict[str, AttrValue] = {}
    for kv in key_values:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind in _SCALARS:  # the common case, inline: this loop runs for every attribute
            out[kv.key] = getattr(value, kind)
        elif kind is not None:
            nested = _any_value(value)
            if nested is not None:
                out[kv.key] = nested
    return out


def _any_value(value: Any) -> AttrValue | None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return str(value.string_value)
    if kind == "int_value":
        return int(value.int_value)
    if kind == "bool_value":
        return bool(value.bool_value)
    if kind == "double_value":
        return float(value.double_value)
    if kind == "array_value":
        # Our attribute values are scalars: arrays are joined, as agent.otel does for the SDK.
        return ",".join(str(_any_value(v)) for v in value.array_value.values)
    if kind == "bytes_value":
        return binascii.hexlify(value.bytes_value).decode("ascii")
    if kind == "kvlist_value":
        inner = {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
        return json.dumps(inner, sort_keys=True, default=str)
    return None


# Encoding: TelemetryEvents back to OTLP protobuf, for the exporter's direct mode -----------


def encode_protobuf(events: Iterable[TelemetryEvent]) -> bytes:
    """One ExportTraceServiceRequest holding the events, grouped by (service, version)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    groups: dict[tuple[str, str], Any] = {}
    for event in events:
        key = (event.service, event.version)
        scope = groups.get(key)
        if scope is None:
            resource_spans = request.resource_spans.add()
            _set_attrs(
                resource_spans.resource.attributes,
                {"service.name": event.service, "service.version": event.version}
                if event.version
                else {"service.name": event.service},
            )
            scope = resource_spans.scope_spans.add()
            scope.scope.name = "selfheal"
            groups[key] = scope
        _fill_span(scope.spans.add(), event)
    data: bytes = request.SerializeToString()
    return data


def _fill_span(span: Any, event: TelemetryEvent) -> None:
    span.trace_id = bytes.fromhex(event.trace_id) if event.trace_id else b""
    span.span_id = bytes.fromhex(event.span_id) if event.span_id else b""
    if event.parent_span_id:
        span.parent_span_id = bytes.fromhex(event.parent_span_id)
    span.name = event.operation
    span.start_time_unix_nano = event.start_ns
    span.end_time_unix_nano = event.start_ns + event.duration_ns
    span.status.code = _STATUS_CODE[event.status]
    _set_attrs(span.attributes, event.attributes)
    if event.exception_type:
        exc = span.events.add()
        exc.name = "exception"
        exc.time_unix_nano = event.start_ns + event.duration_ns
        _set_attrs(
            exc.attributes,
            {
                "exception.type": event.exception_type,
                "exception.message": event.exception_message,
                "exception.stacktrace": event.exception_stacktrace,
            },
        )


def _set_attrs(target: Any, attrs: Mapping[str, AttrValue]) -> None:
    for key, value in attrs.items():
        kv = target.add()
        kv.key = key
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.string_value = str(value)


def response_body(content_type: str, rejected: int = 0, message: str = "") -> bytes:
    """The ExportTraceServiceResponse, with partial_success only when spans were rejected."""
    if content_type in JSON_TYPES:
        if not rejected:
            return b"{}"
        body = {"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}}
        return json.dumps(body).encode()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    data: bytes = response.SerializeToString()
    return data


def status_body(content_type: str, code: int, message: str) -> bytes:
    """A google.rpc.Status (code, message) as OTLP asks for error bodies."""
    if content_type in JSON_TYPES:
        return json.dumps({"code": code, "message": message}).encode()
    # google.rpc.Status is two fields; encoding them by hand spares a googleapis dependency.
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
