"""OTLP payloads: protobuf round trip, OTLP/JSON, refused spans, response and error bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import otlp
from agent.records import CodeLocation, EventSource, SpanStatus, TelemetryEvent

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_attr_value = st.one_of(
    _text, st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False)
)


@st.composite
def events(draw: st.DrawFn) -> TelemetryEvent:
    start = draw(st.integers(0, 2**62))
    exc = draw(st.sampled_from(["", "KeyError"]))
    stack = 'Traceback:\n  File "/app/a.py", line 3, in f\n' if exc else ""
    attrs = draw(st.dictionaries(st.text(min_size=1, max_size=10), _attr_value, max_size=5))
    location = CodeLocation()
    if draw(st.booleans()):
        attrs.update({"code.function.name": "a.f", "code.file.path": "a.py", "code.line.number": 3})
        location = CodeLocation("a.py", "a.f", 3)
    from agent.otel import exception_signature

    return TelemetryEvent(
        source=EventSource.SPAN,
        service=draw(st.sampled_from(["shop", "api"])),
        version=draw(st.sampled_from(["", "1.0"])),
        operation=draw(_text.filter(bool)),
        start_ns=start,
        duration_ns=draw(st.integers(0, 2**40)),
        status=draw(st.sampled_from(list(SpanStatus))),
        trace_id=f"{draw(st.integers(1, 2**128 - 1)):032x}",
        span_id=f"{draw(st.integers(1, 2**64 - 1)):016x}",
        parent_span_id=draw(st.sampled_from(["", "00000000000000aa"])),
        location=location,
        exception_type=exc,
        exception_message="boom" if exc else "",
        exception_stacktrace=stack,
        exception_signature=exception_signature(exc, stack, location),
        attributes=attrs,
    )


@given(st.lists(events(), max_size=8))
def test_protobuf_round_trip(batch: list[TelemetryEvent]) -> None:
    decoded = otlp.decode_protobuf(otlp.encode_protobuf(batch))
    assert decoded.rejected == 0
    key = lambda e: (e.service, e.version, e.span_id)  # noqa: E731 - grouped by resource
    assert sorted(decoded.events, key=key) == sorted(batch, key=key)


def test_json_with_hex_ids_and_nested_values() -> None:
    body = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": "0af7651916cd43dd8448eb211c80319c",
                                "span_id": "b7ad6b7169203331",
                                "name": "GET /",
                                "start_time_unix_nano": 5,
                                "end_time_unix_nano": 9,
                                "attributes": [
                                    {
                                        "key": "tags",
                                        "value": {
                                            "arrayValue": {
                                                "values": [{"stringValue": "a"}, {"intValue": "2"}]
                                            }
                                        },
                                    },
                                    {"key": "raw", "value": {"bytesValue": "AAE="}},
                                    {
                                        "key": "map",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "k", "value": {"boolValue": True}}
                                                ]
                                            }
                                        },
                                    },
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    (event,) = otlp.decode_json(json.dumps(body).encode()).events
    assert event.service == "unknown_service"
    assert event.duration_ns == 4
    assert event.attributes == {"tags": "a,2", "raw": "0001", "map": '{"k": true}'}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "must be an object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "not hex"),
        (b'{"resourceSpans": 3}', "not an OTLP/JSON"),
    ],
)
def test_bad_json_is_a_payload_error(body: bytes, message: str) -> None:
    with pytest.raises(otlp.PayloadError, match=message):
        otlp.decode_json(body)


def test_refused_spans_are_counted_with_a_reason() -> None:
    good = TelemetryEvent(EventSource.SPAN, "s", "op", 10, 5, trace_id="1" * 32, span_id="2" * 16)
    nameless = TelemetryEvent(EventSource.SPAN, "s", "", 10, 5, trace_id="1" * 32, span_id="3" * 16)
    decoded = otlp.decode_protobuf(otlp.encode_protobuf([good, nameless]))
    assert (len(decoded.events), decoded.rejected, decoded.reason) == (1, 1, "span without a name")


def test_response_and_status_bodies() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    assert otlp.response_body("application/x-protobuf") == b""
    reply = ExportTraceServiceResponse.FromString(
        otlp.response_body("application/x-protobuf", 2, "bad ids")
    )
    assert (reply.partial_success.rejected_spans, reply.partial_success.error_message) == (
        2,
        "bad ids",
    )
    assert json.loads(otlp.response_body("application/json", 2, "x")) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "x"}
    }
    assert otlp.status_body("application/x-protobuf", 3, "é" * 100)[:3] == b"\x08\x03\x12"
    assert json.loads(otlp.status_body("application/json", 3, "m")) == {"code": 3, "message": "m"}
