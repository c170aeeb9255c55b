"""Telemetry sources: OTLP JSON spans, JSON-lines logs, file discovery and binary sniffing."""

from __future__ import annotations

import datetime as dt
import json
from datetime import UTC
from pathlib import Path

import pytest

from agent.errors import TelemetryError
from agent.phases.telemetry.anyvalue import attributes
from agent.phases.telemetry.logs import log_event, looks_like_log, parse_time
from agent.phases.telemetry.normalise import LinkIndex, LinkState, normalise
from agent.phases.telemetry.otlp_json import hex_id, parse_request
from agent.phases.telemetry.raw import RawEvent
from agent.phases.telemetry.sources import (
    Cursor,
    ReadStats,
    binary_problem,
    check_unchanged,
    discover,
    read_batch,
)
from agent.records import EventSource, SpanStatus
from tests.agent.phases.telemetry_kit import BASE_NS, request, span, write_lines


def parse(*spans: dict[str, object], service: str = "api") -> tuple[list[RawEvent], int]:
    out: list[RawEvent] = []
    bad = parse_request(request(service, list(spans), version="2.1"), out)
    return out, bad


def test_span_fields_service_and_version() -> None:
    (event,), bad = parse(span("GET /x", 1, 2, parent=3, start_ms=5, duration_ms=2.5))
    assert bad == 0
    assert (event.service, event.version, event.operation) == ("api", "2.1", "GET /x")
    assert (event.start_ns, event.duration_ns) == (BASE_NS + 5_000_000, 2_500_000)
    assert (event.trace_id, event.span_id, event.parent_span_id) == (
        f"{1:032x}",
        f"{2:016x}",
        f"{3:016x}",
    )
    assert event.status is SpanStatus.UNSET and event.source is EventSource.SPAN


@pytest.mark.parametrize(
    "attrs",
    [
        {"code.function.name": "shop.cart.total", "code.file.path": "shop/cart.py"},
        {"code.function": "total", "code.namespace": "shop.cart", "code.filepath": "shop/cart.py"},
    ],
    ids=["new-names", "old-names"],
)
def test_code_location_under_old_and_new_names(attrs: dict[str, object]) -> None:
    line = "code.line.number" if "code.file.path" in attrs else "code.lineno"
    (event,), _ = parse(span("op", 1, 1, attrs={**attrs, line: 42}))
    assert (event.location.file, event.location.function, event.location.line) == (
        "shop/cart.py",
        "shop.cart.total",
        42,
    )


def test_exception_event_gives_type_message_and_signature() -> None:
    stack = (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/api.py", line 3, in handler\n'
        '  File "/srv/app/cart.py", line 9, in total\n'
        "ZeroDivisionError: division by zero"
    )
    (event,), _ = parse(span("op", 1, 1, error="ZeroDivisionError", stack=stack))
    normalise([event], LinkState(LinkIndex(100)), final=True)
    assert event.status is SpanStatus.ERROR
    assert (event.exc_type, event.exc_message) == ("ZeroDivisionError", "it broke")
    assert event.signature == "ZeroDivisionError@/srv/app/cart.py:total"
    record = event.to_event()
    assert record.exception_signature == event.signature
    assert record.exception_stacktrace == stack


def test_attribute_values_of_every_kind() -> None:
    kvs = [
        {"key": "s", "value": {"stringValue": "x"}},
        {"key": "i", "value": {"intValue": "12"}},
        {"key": "j", "value": {"intValue": 13}},
        {"key": "d", "value": {"doubleValue": 1.5}},
        {"key": "b", "value": {"boolValue": True}},
        {
            "key": "a",
            "value": {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "z"}]}},
        },
        {
            "key": "kv",
            "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": False}}]}},
        },
        {"key": "bytes", "value": {"bytesValue": "AQI="}},
        {"key": "bad", "value": {"intValue": "not a number"}},
        {"key": "empty", "value": {}},
        {"value": {"stringValue": "keyless"}},
        "not even a dict",
    ]
    assert attributes(kvs) == {
        "s": "x",
        "i": 12,
        "j": 13,
        "d": 1.5,
        "b": True,
        "a": "1,z",
        "kv": '{"k": false}',
        "bytes": "AQI=",
        "bad": "not a number",
    }


def test_bad_spans_are_counted_and_the_rest_kept() -> None:
    no_name = span("x", 1, 1)
    del no_name["name"]
    bad_time = span("y", 1, 2)
    bad_time["startTimeUnixNano"] = "yesterday"
    bad_id = span("z", 1, 3)
    bad_id["traceId"] = "zz"
    out, bad = parse(no_name, bad_time, bad_id, span("fine", 1, 4))
    assert bad == 3 and [e.operation for e in out] == ["fine"]


def test_ids_hex_or_base64() -> None:
    assert hex_id("AAAAAAAAAAE=", 16) == "0000000000000001"
    assert hex_id("ABCDEF0123456789", 16) == "abcdef0123456789"
    assert hex_id("", 16) == ""
    with pytest.raises(ValueError, match="neither hex nor base64"):
        hex_id("not an id!", 16)


def test_legacy_instrumentation_library_spans_key() -> None:
    line = request("api", [span("old", 1, 1)])
    scope = line["resourceSpans"][0].pop("scopeSpans")
    line["resourceSpans"][0]["instrumentationLibrarySpans"] = scope
    out: list[RawEvent] = []
    assert parse_request(line, out) == 0 and out[0].operation == "old"


# Logs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:00Z", dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)),
        ("2024-05-01T12:00:00.5+02:00", dt.datetime(2024, 5, 1, 10, 0, 0, 500_000, tzinfo=UTC)),
        ("2024-05-01 10:00:00,250", dt.datetime(2024, 5, 1, 10, 0, 0, 250_000, tzinfo=UTC)),
        (1714557600, dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)),
        (1714557600123, dt.datetime(2024, 5, 1, 10, 0, 0, 123_000, tzinfo=UTC)),
        (1714557600.25, dt.datetime(2024, 5, 1, 10, 0, 0, 250_000, tzinfo=UTC)),
        ("1714557600000000000", dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)),
    ],
)
def test_log_timestamps(value: object, expected: dt.datetime) -> None:
    delta = expected - dt.datetime(1970, 1, 1, tzinfo=UTC)
    slack = 1000 if isinstance(value, float) else 0  # a float holds ~16 digits, not 19
    assert abs(parse_time(value) - delta // dt.timedelta(microseconds=1) * 1000) <= slack


def test_log_line_with_a_python_traceback() -> None:
    line = {
        "time": "2024-05-01T10:00:00Z",
        "levelname": "ERROR",
        "name": "shop.views",
        "msg": "failed",
        "exc_info": 'Traceback (most recent call last):\n  File "shop/v.py", line 4, in f\n'
        "KeyError: 'sku'",
        "funcName": "f",
        "pathname": "shop/v.py",
        "lineno": 4,
    }
    assert looks_like_log(line)
    event = log_event(line, "fallback")
    assert (event.service, event.operation, event.status) == (
        "fallback",
        "log shop.views",
        SpanStatus.ERROR,
    )
    assert (event.exc_type, event.exc_message) == ("KeyError", "'sku'")
    assert event.location.function == "f" and event.location.line == 4
    normalise([event], LinkState(LinkIndex(10)), final=True)
    assert event.signature == "KeyError@shop/v.py:f"


def test_log_levels_and_explicit_error_fields() -> None:
    info = log_event({"ts": 1, "level": 30, "message": "ok", "service": "svc"}, "x")
    fatal = log_event({"ts": 1, "level": 60, "message": "dead"}, "x")
    ecs = log_event(
        {"@timestamp": 1, "log.level": "warn", "error.type": "Timeout", "message": "slow"}, "x"
    )
    assert info.status is SpanStatus.UNSET and info.service == "svc"
    assert fatal.status is SpanStatus.ERROR
    assert (ecs.status, ecs.exc_type) == (SpanStatus.ERROR, "Timeout")
    assert not looks_like_log({"message": "no time"})
    with pytest.raises(ValueError):
        log_event({"timestamp": None, "message": "x"}, "x")


# Files --------------------------------------------------------------------------------------


def test_discover_walks_directories_once_per_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    one = write_lines(tmp_path / "a" / "one.jsonl", request("api", [span("x", 1, 1)]))
    write_lines(tmp_path / "two.json", request("api", [span("y", 1, 1)]))
    (tmp_path / "notes.txt").write_text("ignored by suffix", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    write_lines(tmp_path / ".git" / "x.json", "{}")
    found = discover((tmp_path, one))
    assert [Path(s.path).name for s in found] == ["one.jsonl", "two.json"]


def test_binary_sniffing() -> None:
    assert binary_problem(b'{"a": 1}\n') == ""
    assert binary_problem("naïve ✓".encode()) == ""
    assert binary_problem(b"abc\x00def").startswith("binary data: NUL byte at offset 3")
    assert "invalid UTF-8 at offset 1" in binary_problem(b"a\xff\xfebc")


def test_reading_resumes_at_the_cursor_and_notices_truncation(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "t.jsonl", *(request("api", [span("s", 1, n)]) for n in range(1, 6))
    )
    sources = discover((path,))
    stats = ReadStats()
    first: list[RawEvent] = []
    cursor = read_batch(sources, Cursor(), 2, stats, first)
    rest: list[RawEvent] = []
    end = read_batch(sources, cursor, 100, stats, rest)
    assert [e.span_id[-1] for e in first + rest] == ["1", "2", "3", "4", "5"]
    assert end == Cursor(1, 0) and stats.of(str(path)).lines == 5
    path.write_text("", encoding="utf-8")
    with pytest.raises(TelemetryError, match="replaced or truncated"):
        check_unchanged(sources[0], cursor)


def test_link_index_stays_bounded() -> None:
    index = LinkIndex(100)
    for n in range(1000):
        index.add("t", f"{n:016x}", ("s", f"op{n}", ""))
    assert len(index) <= 100
    assert index.get("t", f"{999:016x}") == ("s", "op999", "")
    assert index.get("t", f"{0:016x}") is None


def test_exemplars_keep_no_reference_to_their_line() -> None:
    # An exemplar lives for the whole ingest: it must not pin its (possibly large) line.
    from agent.phases.telemetry.aggregate import Aggregator
    from agent.phases.telemetry.otlp_json import OtlpParser

    spans = [span("op", 1, n, duration_ms=n, attrs={"n": n}) for n in range(1, 30)]
    line = json.dumps(request("api", spans)).encode()
    out: list[RawEvent] = []
    assert OtlpParser(eager=2).parse(json.loads(line), out, line) == 0
    assert sum(not e.attributes_at_hand for e in out) == 27
    aggregator = Aggregator(exemplars=3)
    aggregator.add_all(normalise(out, LinkState(LinkIndex(100)), final=True))
    kept = aggregator.ops[("api", "op", "1.0")].slowest
    assert [e.attributes["n"] for e in kept] == [29, 28, 27]
    assert all(e.attributes_at_hand for e in kept)
