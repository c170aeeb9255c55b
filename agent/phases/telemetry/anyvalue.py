"""OTLP/JSON attribute values (KeyValue lists of AnyValue objects) as plain scalars."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agent.records import AttrValue


def attributes(key_values: Any) -> dict[str, AttrValue]:
    """KeyValue list → dict; arrays join with commas, key-value lists become JSON text.

    Never raises on odd values (it also runs lazily, long after the line was read): a value
    that does not convert is kept as its text, an entry without a string key is dropped.
    """
    out: dict[str, AttrValue] = {}
    if not isinstance(key_values, list):
        return out
    for kv in key_values:
        if not isinstance(kv, dict):
            continue
        key = kv.get("key")
        value = kv.get("value")
        if not isinstance(key, str) or not isinstance(value, dict) or not value:
            continue
        text = value.get("stringValue")  # most attributes are strings: skip the dispatch
        out[key] = text if isinstance(text, str) else any_value(value)
    return out


def any_value(value: dict[str, Any]) -> AttrValue:
    for kind, inner in value.items():
        convert = _CONVERT.get(kind)
        if convert is None:
            continue
        try:
            return convert(inner)
        except (TypeError, ValueError, AttributeError, OverflowError):
            return str(inner)
    return ""


def _array(inner: dict[str, Any]) -> AttrValue:
    values = inner.get("values") or ()
    return ",".join(str(any_value(v)) for v in values if isinstance(v, dict))


def _kvlist(inner: dict[str, Any]) -> AttrValue:
    return json.dumps(attributes(inner.get("values")), sort_keys=True)


def _bool(inner: object) -> AttrValue:
    if isinstance(inner, str):
        return inner.lower() == "true"
    return bool(inner)


def _scalar(inner: object) -> AttrValue:
    return inner if isinstance(inner, str | int | float | bool) else str(inner)


_CONVERT: dict[str, Callable[[Any], AttrValue]] = {
    "stringValue": _scalar,
    "intValue": int,  # a string in OTLP/JSON (int64), a number from some writers
    "doubleValue": float,
    "boolValue": _bool,
    "arrayValue": _array,
    "kvlistValue": _kvlist,
    "bytesValue": _scalar,  # already base64 text
}


class LineRef:
    """The bytes of one OTLP JSON line, kept so its spans' attributes can be decoded later.

    Holding the decoded attribute lists of a whole batch costs more (in deallocation and cache
    misses of ~10 objects per span) than decoding a line again for the few spans that are
    stored; one bytes object per line is cheap to keep.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def span_attributes(self, resource: int, scope: int, span: int) -> dict[str, AttrValue]:
        cached = _LAST.entry  # one read: another thread may replace it meanwhile
        if cached[0] is self:
            decoded = cached[1]
        else:
            decoded = json.loads(self.data)
            _LAST.entry = (self, decoded)
        try:
            rs = decoded["resourceSpans"][resource]
            scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans")
            return attributes(scopes[scope]["spans"][span].get("attributes"))
        except (KeyError, IndexError, TypeError, AttributeError):
            return {}  # the span was read from this line, so this does not happen


class _LastLine:
    """The last line decoded again: stored events come in line order, so most reads hit it."""

    entry: tuple[LineRef | None, Any] = (None, None)


_LAST = _LastLine()

SpanRef = tuple[LineRef, int, int, int]  # a span's line, and its resource, scope and index
