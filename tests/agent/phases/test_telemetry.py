"""Telemetry phase end to end: real conductor, real store, files on disk."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.commands.telemetry import SAMPLES_DIR
from agent.conductor import Conductor
from agent.config import Config
from agent.errors import BeatError, SelfHealError
from agent.phases.telemetry import TelemetryOutcome, TelemetryRequest, ingest
from agent.phases.telemetry.aggregate import OTHER
from agent.records import EventSource, SpanStatus, TelemetryEvent, TelemetryMetrics
from agent.spool import SpoolWriter
from agent.store import Store
from tests.agent.phases.telemetry_kit import request, span, write_lines


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(root=tmp_path, store=tmp_path / ".selfheal" / "selfheal.db")


@pytest.fixture
def conductor(config: Config) -> Iterator[Conductor]:
    with Conductor(config) as cond:
        yield cond


def metric(outcome: TelemetryOutcome, service: str, operation: str) -> TelemetryMetrics:
    found = [m for m in outcome.metrics if (m.service, m.operation) == (service, operation)]
    assert len(found) == 1, [(m.service, m.operation) for m in outcome.metrics]
    return found[0]


def test_sample_from_the_sdk_is_read_normalised_and_aggregated(
    conductor: Conductor, config: Config
) -> None:
    out = ingest(conductor, TelemetryRequest(sources=(SAMPLES_DIR,)))
    assert out.events == 405 and out.malformed_total == 0 and out.unresolved_parents == 0
    checkout = metric(out, "shop", "GET /checkout")
    assert (checkout.version, checkout.count, checkout.error_count) == ("1.4.0", 20, 5)
    assert [(s.signature, s.count) for s in checkout.exceptions] == [
        ("KeyError@shop/views.py:checkout", 5)
    ]
    assert checkout.p50_ns <= checkout.p95_ns <= checkout.p99_ns <= checkout.max_ns * 1.01
    # New semantic-convention names (shop) and old ones with a namespace (inventory).
    select = metric(out, "shop", "SELECT cart_items")
    assert (select.location.file, select.location.function, select.location.line) == (
        "shop/repo.py",
        "shop.repo.items",
        27,
    )
    stock = metric(out, "inventory", "GET /stock")
    assert (stock.location.file, stock.location.function, stock.location.line) == (
        "inventory/api.py",
        "inventory.api.stock",
        12,
    )
    # A call edge across services, resolved by span id within the trace.
    client = metric(out, "shop", "GET /stock")
    assert [(e.child, e.count) for e in client.edges] == [("inventory/GET /stock", 60)]
    logs = metric(out, "shop", "log shop.views")
    assert (logs.count, logs.error_count, logs.exceptions[0].signature) == (
        2,
        1,
        "KeyError@shop/views.py:checkout",
    )
    with Store.open(config.store) as store:
        assert store.metrics(out.run_id) == list(out.metrics)
        kind, status, summary = store.conn.execute(
            "SELECT kind, status, summary FROM runs WHERE id = ?", (out.run_id,)
        ).fetchone()
        assert (kind, status, json.loads(summary)["events"]) == ("ingest", "ok", 405)
        stored = store.events(out.run_id)
    # Not keep_raw: only exemplars (slowest and failing per operation) are stored.
    assert 0 < len(stored) == out.stored_events < out.events
    assert sum(e.status is SpanStatus.ERROR for e in stored) >= 3


def test_keep_raw_stores_every_normalised_event(conductor: Conductor, config: Config) -> None:
    path = write_lines(
        config.root / "spans.jsonl",
        request(
            "api",
            [
                span("SELECT", 1, 2, parent=1, duration_ms=2, attrs={"code.function": "load"}),
                span("GET /", 1, 1, duration_ms=5, attrs={"http.route": "/", "tags": ["a", "b"]}),
            ],
        ),
    )
    out = ingest(conductor, TelemetryRequest(sources=(path,), keep_raw=True, run_kind="test"))
    with Store.open(config.store) as store:
        events = store.events(out.run_id)
    assert out.stored_events == len(events) == 2
    child, root = events
    assert child.parent_operation == "GET /" and child.parent_span_id == root.span_id
    assert child.location.function == "load"
    assert root.attributes == {"http.route": "/", "tags": "a,b"}
    assert root.duration_ns == 5_000_000 and child.source is EventSource.SPAN


def test_parents_are_resolved_across_lines_and_batches(
    conductor: Conductor, tmp_path: Path
) -> None:
    # Children are exported before their parents; with one event per batch, the parent
    # always arrives in a later batch than its child.
    lines = [request("api", [span("child", 7, n + 10, parent=1)]) for n in range(3)]
    lines.append(request("api", [span("root", 7, 1)]))
    lines.append(request("api", [span("orphan", 8, 99, parent=1234)]))
    path = write_lines(tmp_path / "t.jsonl", *lines)
    many = ingest(conductor, TelemetryRequest(sources=(path,), batch_events=1))
    one = ingest(conductor, TelemetryRequest(sources=(path,)))
    assert many.batches > 3 and one.batches == 1
    for out in (many, one):
        root = metric(out, "api", "root")
        assert [(e.child, e.count) for e in root.edges] == [("api/child", 3)]
        assert out.unresolved_parents == 1  # the orphan's parent never came


def test_batch_size_does_not_change_the_metrics(conductor: Conductor, tmp_path: Path) -> None:
    lines = []
    for t in range(30):
        kids = [span("db", t + 1, 100 + k, parent=1, duration_ms=1 + (t * k) % 7) for k in range(3)]
        err = "ValueError" if t % 7 == 0 else ""
        lines.append(
            request("api", [*kids, span("GET /", t + 1, 1, duration_ms=20 + t, error=err)])
        )
    path = write_lines(tmp_path / "t.jsonl", *lines)
    results = [
        ingest(conductor, TelemetryRequest(sources=(path,), batch_events=n)).metrics
        for n in (1, 5, 64, 10_000)
    ]
    assert all(r == results[0] for r in results)
    root = next(m for m in results[0] if m.operation == "GET /")
    assert (root.count, root.error_count, root.edges[0].count) == (30, 5, 90)
    assert root.mean_ns == pytest.approx(sum(20 + t for t in range(30)) / 30 * 1e6)


def test_malformed_lines_are_counted_per_source_and_skipped(
    conductor: Conductor, tmp_path: Path
) -> None:
    good = request("api", [span("ok", 1, 1), {"spanId": "00000000000000aa", "name": 5}])
    bad = write_lines(
        tmp_path / "bad.jsonl",
        good,
        "not json at all",
        "[1, 2, 3]",
        '{"neither": "spans nor a log"}',
        "",
        '{"resourceLogs": []}',
        '{"resourceSpans": "nope"}',
    )
    with bad.open("a", encoding="utf-8") as handle:
        handle.write('{"resourceSpans": [{"scopeSpans"')  # a torn last line
    clean = write_lines(tmp_path / "clean.jsonl", request("api", [span("ok", 2, 2)]))
    out = ingest(conductor, TelemetryRequest(sources=(bad, clean)))
    # the span with a numeric name, 3 bad lines, the bad resourceSpans, the torn line
    assert out.malformed == {str(bad): 6, str(clean): 0}
    assert out.ignored == 1 and out.events == 2
    assert metric(out, "api", "ok").count == 2


def test_base64_ids_and_string_status_codes(conductor: Conductor, tmp_path: Path) -> None:
    parent = span("parent", 3, 1)
    child = span("child", 3, 2, parent=1)
    child["traceId"] = "AAAAAAAAAAAAAAAAAAAAAw=="  # protobuf JSON mapping: base64
    child["spanId"] = "AAAAAAAAAAI="
    child["parentSpanId"] = "AAAAAAAAAAE="
    child["status"] = {"code": "STATUS_CODE_ERROR"}
    path = write_lines(tmp_path / "b64.jsonl", request("api", [child, parent]))
    out = ingest(conductor, TelemetryRequest(sources=(path,), keep_raw=True))
    assert [(e.child, e.count) for e in metric(out, "api", "parent").edges] == [("api/child", 1)]
    assert metric(out, "api", "child").error_count == 1


def test_spool_segments_and_in_memory_events(
    conductor: Conductor, config: Config, tmp_path: Path
) -> None:
    events = [
        TelemetryEvent(EventSource.SPAN, "svc", "work", 10 * i, 1000 + i, span_id=f"{i:016x}")
        for i in range(1, 6)
    ]
    with SpoolWriter(tmp_path / "spool", max_bytes=2048) as writer:
        writer.write(events)
    test_event = TelemetryEvent(EventSource.TEST, "tests", "tests/test_a.py::test_x", 5, 7)
    out = ingest(
        conductor,
        TelemetryRequest(
            sources=(tmp_path / "spool",), events=(test_event,), keep_raw=True, run_kind="test"
        ),
    )
    assert out.events == 6 and metric(out, "svc", "work").count == 5
    with Store.open(config.store) as store:
        assert store.events(out.run_id) == [test_event, *events]


def test_spool_span_batches_are_read_beside_event_lines(
    conductor: Conductor, config: Config, tmp_path: Path
) -> None:
    rows = [
        ["GET /a", 10, 40, 0, 7, 1, 0, {"code.function.name": "m.a"}, 0],
        ["db", 12, 20, 2, 7, 2, 1, {}, ["KeyError", "k", ""]],
        ["bad", "not a time", 1, 0, 7, 3, 0, {}, 0],
    ]
    old = TelemetryEvent(EventSource.SPAN, "svc", "old", 50, 5, span_id=f"{9:016x}")
    with SpoolWriter(tmp_path / "spool") as writer:
        writer.write_batch("svc", "2", rows)
        writer.write([old])
    out = ingest(conductor, TelemetryRequest(sources=(tmp_path / "spool",), keep_raw=True))
    assert out.events == 3 and out.malformed_total == 1
    assert metric(out, "svc", "db").error_count == 1
    with Store.open(config.store) as store:
        stored = {e.operation: e for e in store.events(out.run_id)}
    assert stored["db"].parent_operation == "GET /a" and stored["db"].version == "2"
    assert stored["GET /a"].location.function == "m.a" and stored["old"] == old


def test_operation_limit_folds_the_rest_into_other(conductor: Conductor, tmp_path: Path) -> None:
    spans = [span(f"GET /item/{n}", n + 1, n + 1) for n in range(12)]
    path = write_lines(tmp_path / "t.jsonl", request("api", spans))
    out = ingest(conductor, TelemetryRequest(sources=(path,), max_operations=5))
    assert len(out.metrics) == 6 and out.overflow == 7
    assert metric(out, "api", OTHER).count == 7


def test_binary_file_is_one_line_error_and_nothing_is_stored(
    conductor: Conductor, config: Config, tmp_path: Path
) -> None:
    garbage = tmp_path / "dump.jsonl"
    garbage.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(SelfHealError) as info:
        ingest(conductor, TelemetryRequest(sources=(garbage,)))
    assert "\n" not in str(info.value)
    assert f"{garbage}: not a telemetry file (binary data" in str(info.value)
    if config.store.exists():
        with Store.open(config.store) as store:
            assert (
                store.conn.execute("SELECT count(*) FROM runs WHERE kind = 'ingest'").fetchone()[0]
                == 0
            )


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (TelemetryRequest(), "nothing to ingest"),
        (TelemetryRequest(sources=(Path("x"),), run_kind="nightly"), "run kind 'nightly'"),
        (TelemetryRequest(sources=(Path("/no/such/file.jsonl"),)), "no such file or directory"),
        (TelemetryRequest(sources=(Path("x"),), batch_events=0), "must be positive"),
    ],
    ids=["empty", "kind", "missing", "batch"],
)
def test_bad_requests_are_clear_errors(
    conductor: Conductor, request_: TelemetryRequest, message: str
) -> None:
    with pytest.raises(BeatError, match=message):
        ingest(conductor, request_)


def test_a_source_lost_mid_ingest_marks_the_run_failed_and_keeps_earlier_batches(
    config: Config, tmp_path: Path
) -> None:
    first = write_lines(
        tmp_path / "a.jsonl", *(request("api", [span("a", 1, n)]) for n in range(1, 4))
    )
    second = write_lines(tmp_path / "b.jsonl", request("api", [span("b", 2, 1)]))

    def progress(message: str) -> None:
        if "source file" in message:
            second.unlink()  # between finding the sources and reading the second one

    with Conductor(config, progress=progress) as cond, pytest.raises(BeatError) as info:
        ingest(cond, TelemetryRequest(sources=(first, second), batch_events=1, keep_raw=True))
    assert f"{second}: cannot read" in str(info.value)
    with Store.open(config.store) as store:
        ((run_id, status),) = store.conn.execute(
            "SELECT id, status FROM runs WHERE kind = 'ingest'"
        ).fetchall()
        assert status == "failed"
        assert [e.operation for e in store.events(run_id)] == ["a", "a", "a"]


def test_outcome_is_frozen(conductor: Conductor) -> None:
    out = ingest(conductor, TelemetryRequest(sources=(SAMPLES_DIR / "shop.log.jsonl",)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.run_id = 3  # type: ignore[misc]
    assert out.events == 5


def test_attributes_read_again_from_their_line_are_each_spans_own(
    conductor: Conductor, config: Config, tmp_path: Path
) -> None:
    # Past the first few spans of an operation, attributes are decoded from the line only
    # when an event is stored; every stored event must still carry its own.
    lines = [
        request("api", [span("GET /", n, n, attrs={"n": n, "user": f"u{n}"}) for n in range(1, 8)]),
        request("api", [span("GET /", n, n, attrs={"n": n}) for n in range(8, 12)]),
    ]
    path = write_lines(tmp_path / "t.jsonl", *lines)
    out = ingest(conductor, TelemetryRequest(sources=(path,), keep_raw=True))
    with Store.open(config.store) as store:
        events = store.events(out.run_id)
    assert [e.attributes["n"] for e in events] == list(range(1, 12))
    assert events[5].attributes == {"n": 6, "user": "u6"}


def test_hand_on_gives_the_stored_events_in_row_order(
    conductor: Conductor, config: Config, tmp_path: Path
) -> None:
    # A child before its parent and one event per batch: the child is held back until its
    # parent comes, so the stored order is not the order read.
    path = write_lines(
        tmp_path / "t.jsonl",
        request("api", [span("child", 7, 10, parent=1, error="KeyError")]),
        request("api", [span("other", 8, 1)]),
        request("api", [span("root", 7, 1, attrs={"code.function": "root"})]),
    )
    out = ingest(
        conductor,
        TelemetryRequest(sources=(path,), batch_events=1, keep_raw=True, hand_on=True),
    )
    with Store.open(config.store) as store:
        stored = store.events(out.run_id)
    assert out.batches > 3
    assert [e.to_event() for e in out.handed_on] == stored
    assert [e.operation for e in stored] == ["other", "child", "root"]
    assert stored[1].parent_operation == "root" and stored[1].exception_signature
    kept = ingest(conductor, TelemetryRequest(sources=(path,), keep_raw=True))
    assert kept.handed_on == ()  # only on request: a large ingest must not stay in memory


def test_hand_on_needs_every_event_stored(conductor: Conductor) -> None:
    events = (TelemetryEvent(EventSource.TEST, "pytest", "t", 1, 2),)
    with pytest.raises(BeatError, match="hand_on needs keep_raw"):
        ingest(conductor, TelemetryRequest(events=events, hand_on=True))


def telemetry_beats(conductor: Conductor) -> list[object]:
    return list(conductor.sequence("telemetry.parse").beats)


def _child(i: int, trace: str = "ab" * 16) -> TelemetryEvent:
    return TelemetryEvent(
        EventSource.TEST,
        "pytest",
        f"test_{i}",
        10 * i,
        10 * i + 5,
        trace_id=trace,
        span_id=f"{i:016x}",
        parent_span_id="f" * 16,
    )


def test_a_feed_is_stored_chunk_by_chunk_with_its_known_parent(
    conductor: Conductor, config: Config
) -> None:
    """A test session's spans, fed as its tests end: each chunk is stored before the next
    comes, its spans linked to the session span that is known to come last."""
    session = TelemetryEvent(
        EventSource.TEST, "pytest", "pytest session", 1, 99, trace_id="ab" * 16, span_id="f" * 16
    )
    chunks = [((_child(1), _child(2)), False), ((_child(3),), False), ((session,), True)]
    stored_before: list[tuple[int, int]] = []
    count = "SELECT count(*) FROM spans WHERE source {} 'beat'"

    def feed() -> tuple[tuple[TelemetryEvent, ...], bool]:
        with Store.open(config.store) as other:  # what another reader sees by now
            spans = other.conn.execute(count.format("!=")).fetchone()[0]
            beats = other.conn.execute(count.format("=")).fetchone()[0]
        stored_before.append((spans, beats))
        return chunks.pop(0)

    out = ingest(
        conductor,
        TelemetryRequest(
            feed=feed,
            parents=(("ab" * 16, "f" * 16, ("pytest", "pytest session", "")),),
            keep_raw=True,
            hand_on=True,
            run_kind="test",
        ),
    )
    # Nothing held back for the parent that comes last; the beat spans of each chunk's play
    # are written while the next chunk is awaited, not all at the end.
    assert [spans for spans, _ in stored_before] == [0, 2, 3]
    assert [beats > 0 for _, beats in stored_before] == [False, True, True]
    assert out.batches == 3 and out.unresolved_parents == 0 and len(out.handed_on) == 4
    with Store.open(config.store) as store:
        stored = store.events(out.run_id)
        (status,) = store.conn.execute("SELECT status FROM runs WHERE id = ?", (out.run_id,))
    assert [e.operation for e in stored] == ["test_1", "test_2", "test_3", "pytest session"]
    with Store.open(config.store) as store:  # one `pipeline` run holds every play's beats
        pipeline = store.conn.execute(
            "SELECT r.status, count(s.id) FROM runs r JOIN spans s ON s.run_id = r.id"
            " WHERE r.kind = 'pipeline' GROUP BY r.id"
        ).fetchall()
    assert pipeline == [("ok", 3 * (len(telemetry_beats(conductor)) + 1))]
    assert {e.parent_operation for e in stored[:3]} == {"pytest session"}
    assert status == ("ok",)


def test_a_feed_that_breaks_off_marks_the_run_failed_and_keeps_what_came(
    conductor: Conductor, config: Config
) -> None:
    from agent.errors import TelemetryError

    calls = iter([((_child(1),), False)])

    def feed() -> tuple[tuple[TelemetryEvent, ...], bool]:
        try:
            return next(calls)
        except StopIteration:
            raise TelemetryError("the test session went away before it ended") from None

    parents = (("ab" * 16, "f" * 16, ("pytest", "pytest session", "")),)
    with pytest.raises(SelfHealError, match="went away"):
        ingest(
            conductor,
            TelemetryRequest(feed=feed, parents=parents, keep_raw=True, run_kind="test"),
        )
    with Store.open(config.store) as store:
        ((run_id, status),) = store.conn.execute(
            "SELECT id, status FROM runs WHERE kind = 'test'"
        ).fetchall()
        assert status == "failed"
        assert [e.operation for e in store.events(run_id)] == ["test_1"]
