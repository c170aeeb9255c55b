"""Span-table rows straight from normalised events: no TelemetryEvent, no per-row dict dump.

The store beat writes every span of a kept-raw ingest (the receiver's 20,000 spans/s path).
`Store.insert_events` builds a record per span and dumps `records.to_json` of it; here the same
payload is written out by hand: only the attributes go through the JSON encoder, every other
string through the C string escaper, and fields at their default are left out. The payload
decodes (`records.from_json`) to exactly the record `to_json` would have written, so
`Store.events` sees no difference; json_extract of a left-out field is NULL (readers take it
as empty).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from agent.phases.telemetry.raw import RawEvent
from agent.records import (
    EVENT_HAND_FIELDS,
    CallEdge,
    CodeLocation,
    SignatureCount,
    TelemetryEvent,
    TelemetryMetrics,
    to_json,
)

# encode_basestring_ascii is the C escaper json.dumps itself uses: quotes included.
_quote = json.encoder.encode_basestring_ascii
_ATTRS = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def _refuse(value: object) -> object:
    raise TypeError(f"attribute value {value!r} is not JSON")


# JSONEncoder.encode builds a new C encoder on every call; this one is built once (CPython).
_make = json.encoder.c_make_encoder  # type: ignore[attr-defined]
_C_ATTRS = _make(None, _refuse, _quote, None, ":", ",", False, False, True) if _make else None


def _attrs_json(attrs: dict[str, Any]) -> str:
    if _C_ATTRS is None:
        return _ATTRS.encode(attrs)
    return "".join(_C_ATTRS(attrs, 0))


BY_HAND = tuple(f.name for f in dataclasses.fields(TelemetryEvent)) == EVENT_HAND_FIELDS

Row = tuple[Any, ...]


def span_rows(run_id: int, events: Iterable[RawEvent]) -> list[Row]:
    """The `spans` rows (in `Store.insert_event_rows` column order) of normalised events."""
    if not BY_HAND:
        from agent.store import event_row

        return [tuple(event_row(run_id, e.to_event())) for e in events]
    return [_row(run_id, e) for e in events]


def _row(run_id: int, e: RawEvent) -> Row:
    # What RawEvent.to_event would give: a record passed through unchanged equals it too.
    loc = e.location
    start, duration = e.start_ns, e.duration_ns
    if type(start) is not int or type(duration) is not int:
        from agent.store import event_row

        return tuple(event_row(run_id, e.to_event()))
    source, status = e.source._value_, e.status._value_
    parent_op = e.parent_operation
    parts = [
        '{"type":"TelemetryEvent","source":',
        _quote(source),
        ',"service":',
        _quote(e.service),
        ',"operation":',
        _quote(e.operation),
        f',"start_ns":{start},"duration_ns":{duration},"status":',
        _quote(status),
        ',"version":',
        _quote(e.version),
        ',"trace_id":',
        _quote(e.trace_id),
        ',"span_id":',
        _quote(e.span_id),
        ',"parent_span_id":',
        _quote(e.parent_span_id),
    ]
    # Fields at their default are left out (records.from_json restores them): most spans have
    # no exception, many no parent or code location, and every byte is written twice (WAL).
    if parent_op:
        parts += (',"parent_operation":', _quote(parent_op))
    if loc.file or loc.function or loc.line:
        parts += (',"location":{"file":', _quote(loc.file), ',"function":', _quote(loc.function))
        parts.append(f',"line":{int(loc.line)}}}')
    exc = e.exception
    if exc is not None or e.signature:
        exc = exc or ("", "", "")
        parts += (',"exception_type":', _quote(exc[0]), ',"exception_message":', _quote(exc[1]))
        parts += (',"exception_stacktrace":', _quote(exc[2]))
        parts += (',"exception_signature":', _quote(e.signature))
    parts += (',"attributes":', _attrs_json(e.attributes), "}")
    payload = "".join(parts)
    return (
        run_id,
        source,
        e.service,
        e.operation,
        e.version,
        start,
        duration,
        status,
        e.trace_id,
        e.span_id,
        e.parent_span_id,
        loc.file,
        loc.function,
        e.signature,
        payload,
    )


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


# The records as `metric_rows` writes them by hand; another shape goes through `to_json`.
METRICS_BY_HAND = (
    _names(TelemetryMetrics)
    == (
        *("service", "operation", "version", "count", "error_count", "mean_ns", "p50_ns"),
        *("p95_ns", "p99_ns", "min_ns", "max_ns", "window_start_ns", "window_end_ns"),
        *("edges", "exceptions", "sketch", "location"),
    )
    and _names(CallEdge) == ("parent", "child", "count")
    and _names(SignatureCount) == ("signature", "count")
    and _names(CodeLocation) == ("file", "function", "line")
)


def metric_rows(run_id: int, metrics: Iterable[TelemetryMetrics]) -> list[Row]:
    """The `metrics` rows (see `agent.store.metric_row`) of aggregates.

    The payload is the text `json.dumps(to_json(m))` gives, without its generic walk over
    every (bucket, count) pair of the sketch and every call edge, most of a test run's cost.
    """
    from agent.store import metric_row

    return [
        metric_row(run_id, m, json.dumps(_metric_json(m) if METRICS_BY_HAND else to_json(m)))
        for m in metrics
    ]


def _metric_json(m: TelemetryMetrics) -> dict[str, Any]:
    loc = m.location
    return {
        "type": "TelemetryMetrics",
        "service": m.service,
        "operation": m.operation,
        "version": m.version,
        "count": m.count,
        "error_count": m.error_count,
        "mean_ns": m.mean_ns,
        "p50_ns": m.p50_ns,
        "p95_ns": m.p95_ns,
        "p99_ns": m.p99_ns,
        "min_ns": m.min_ns,
        "max_ns": m.max_ns,
        "window_start_ns": m.window_start_ns,
        "window_end_ns": m.window_end_ns,
        "edges": [{"parent": e.parent, "child": e.child, "count": e.count} for e in m.edges],
        "exceptions": [{"signature": x.signature, "count": x.count} for x in m.exceptions],
        "sketch": m.sketch,  # pairs: tuples encode as the lists to_json makes of them
        "location": {"file": loc.file, "function": loc.function, "line": loc.line},
    }
