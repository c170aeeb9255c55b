"""Builders for OTLP JSON lines (the Collector file-exporter format) used by telemetry tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASE_NS = 1_732_000_000_000_000_000


def attr(key: str, value: object) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        items = [{"stringValue": str(v)} for v in value]
        return {"key": key, "value": {"arrayValue": {"values": items}}}
    return {"key": key, "value": {"stringValue": str(value)}}


def span(
    name: str,
    trace: int,
    span_id: int,
    *,
    parent: int = 0,
    start_ms: float = 0,
    duration_ms: float = 1,
    attrs: dict[str, object] | None = None,
    error: str = "",
    stack: str = "",
) -> dict[str, Any]:
    start = BASE_NS + int(start_ms * 1e6)
    out: dict[str, Any] = {
        "traceId": f"{trace:032x}",
        "spanId": f"{span_id:016x}",
        "name": name,
        "kind": 2,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + int(duration_ms * 1e6)),
        "attributes": [attr(k, v) for k, v in (attrs or {}).items()],
        "status": {},
    }
    if parent:
        out["parentSpanId"] = f"{parent:016x}"
    if error:
        out["status"] = {"code": 2, "message": error}
        out["events"] = [
            {
                "name": "exception",
                "timeUnixNano": str(start),
                "attributes": [
                    attr("exception.type", error),
                    attr("exception.message", "it broke"),
                    attr("exception.stacktrace", stack),
                ],
            }
        ]
    return out


def request(service: str, spans: list[dict[str, Any]], version: str = "1.0") -> dict[str, Any]:
    resource = [attr("service.name", service), attr("service.version", version)]
    return {
        "resourceSpans": [
            {"resource": {"attributes": resource}, "scopeSpans": [{"scope": {}, "spans": spans}]}
        ]
    }


def write_lines(path: Path, *lines: dict[str, Any] | str) -> Path:
    text = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    path.write_text(text, encoding="utf-8")
    return path
