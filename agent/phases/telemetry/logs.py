"""JSON-lines application logs: one object per line with a timestamp, level and message."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from agent.phases.telemetry.raw import RawEvent
from agent.records import AttrValue, EventSource, SpanStatus

# Field names as the common JSON loggers write them (python-json-logger, structlog, ECS, Bunyan).
TIME_KEYS = ("timestamp", "@timestamp", "time", "ts", "asctime", "datetime")
LEVEL_KEYS = ("level", "levelname", "severity", "log.level", "lvl")
MESSAGE_KEYS = ("message", "msg", "event")
LOGGER_KEYS = ("logger", "logger_name", "name", "log.logger")
SERVICE_KEYS = ("service", "service.name", "service_name", "app")
VERSION_KEYS = ("service.version", "version", "service_version")
TRACE_KEYS = ("trace_id", "traceId", "trace.id", "otelTraceID")
SPAN_KEYS = ("span_id", "spanId", "span.id", "otelSpanID")
EXC_TYPE_KEYS = ("exception.type", "error.type", "exc_type")
EXC_MESSAGE_KEYS = ("exception.message", "error.message", "exc_message")
STACK_KEYS = ("exception.stacktrace", "error.stack_trace", "exc_info", "exception", "stack_trace")
ERROR_LEVELS = frozenset({"error", "err", "critical", "crit", "fatal", "alert", "emergency"})
# Bunyan and pino write numeric levels: 50 error, 60 fatal.
NUMERIC_ERROR_LEVEL = 50
_EXC_LINE = re.compile(
    r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)|[A-Z]\w*)(?::|$)"
)


def looks_like_log(obj: dict[str, Any]) -> bool:
    """A log line has a timestamp and a message or level under one of the usual names."""
    has_time = any(k in obj for k in TIME_KEYS)
    return has_time and (any(k in obj for k in MESSAGE_KEYS) or any(k in obj for k in LEVEL_KEYS))


def log_event(obj: dict[str, Any], default_service: str) -> RawEvent:
    """One log line as an event: operation `log <logger>`, zero duration, ERROR on error level."""
    start = parse_time(_first(obj, TIME_KEYS))
    level = _first(obj, LEVEL_KEYS)
    logger = str(_first(obj, LOGGER_KEYS) or "root")
    message = _first(obj, MESSAGE_KEYS)
    exc_type, exc_message, stack = _exception(obj)
    status = SpanStatus.ERROR if exc_type or _is_error(level) else SpanStatus.UNSET
    attrs: dict[str, AttrValue] = {"log.level": str(level or "")}
    if message is not None:
        attrs["log.message"] = str(message)[:2000]
    for key in ("code.function", "code.filepath", "code.lineno", "funcName", "pathname", "lineno"):
        value = obj.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            attrs[_CODE_ALIASES.get(key, key)] = value
    return RawEvent(
        EventSource.LOG,
        str(_first(obj, SERVICE_KEYS) or default_service),
        str(_first(obj, VERSION_KEYS) or ""),
        f"log {logger}",
        start,
        0,
        status,
        str(_first(obj, TRACE_KEYS) or "").lower(),
        str(_first(obj, SPAN_KEYS) or "").lower(),
        "",
        attrs,
        (exc_type, exc_message, stack) if exc_type else None,
    )


# Python's logging record names, mapped to the OTel semantic-convention ones.
_CODE_ALIASES = {"funcName": "code.function", "pathname": "code.filepath", "lineno": "code.lineno"}


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None and value != "":
            return value
    return None


def _is_error(level: object) -> bool:
    if isinstance(level, int | float) and not isinstance(level, bool):
        return level >= NUMERIC_ERROR_LEVEL
    return isinstance(level, str) and level.lower() in ERROR_LEVELS


def _exception(obj: dict[str, Any]) -> tuple[str, str, str]:
    """Type, message and stack trace from explicit fields or from a Python traceback text."""
    exc_type = str(_first(obj, EXC_TYPE_KEYS) or "")
    exc_message = str(_first(obj, EXC_MESSAGE_KEYS) or "")
    stack = _first(obj, STACK_KEYS)
    if isinstance(stack, dict):  # ECS-like nested {"type":..., "message":..., "stacktrace":...}
        exc_type = exc_type or str(stack.get("type") or "")
        exc_message = exc_message or str(stack.get("message") or "")
        stack = stack.get("stacktrace") or stack.get("stack_trace") or ""
    stack_text = "" if stack is None or stack is True else str(stack)
    if stack_text and not exc_type:
        exc_type, exc_message = _last_exception_line(stack_text)
    return exc_type, exc_message, stack_text


def _last_exception_line(stack: str) -> tuple[str, str]:
    """`ValueError: bad` from the last line of a Python traceback."""
    for line in reversed(stack.strip().splitlines()):
        match = _EXC_LINE.match(line.strip())
        if match:
            _, _, message = line.strip().partition(":")
            return match.group(1), message.strip()
    return "", ""


def parse_time(value: object) -> int:
    """Epoch nanoseconds from an ISO 8601 string or a number in s, ms, µs or ns."""
    if isinstance(value, bool) or value is None:
        raise ValueError("log line without a timestamp")
    if isinstance(value, int | float):
        return _from_number(value)
    text = str(value).strip()
    for convert in (int, float):
        try:
            return _from_number(convert(text))
        except ValueError:
            pass
    stamp = dt.datetime.fromisoformat(text.replace(",", ".", 1) if "," in text[19:23] else text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)  # naive times are taken as UTC, as OTel does
    delta = stamp - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _from_number(value: float) -> int:
    # The magnitude tells the unit: seconds until 1e11 (year 5138), then ms, µs, ns.
    # Integers stay integers: a float has too few digits for nanoseconds since 1970.
    for limit, scale in ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3)):
        if abs(value) < limit:
            return value * scale if isinstance(value, int) else round(value * scale)
    return int(value)
