"""SelfHealSpanExporter with the real SDK: spool, direct OTLP/HTTP, fallback, entry point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from agent import spool
from agent.exporter import SelfHealSpanExporter
from agent.receiver import Receiver, ReceiverSettings, wait_until_stored
from agent.records import TelemetryEvent

APP = Path(__file__).parent / "shop_app"


def _provider(exporter: SelfHealSpanExporter) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "shop", "service.version": "A"})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _emit(provider: TracerProvider, n: int) -> None:
    tracer = provider.get_tracer("t")
    for i in range(n):
        with tracer.start_as_current_span("GET /items", attributes={"code.lineno": i}):
            pass


def _spooled(directory: Path) -> list[TelemetryEvent]:
    return [e for _, read in spool.iter_spool(directory) for e in read.events]


def test_spans_reach_the_spool_as_records(tmp_path: Path) -> None:
    exporter = SelfHealSpanExporter(spool_dir=tmp_path / "spool")
    provider = _provider(exporter)
    _emit(provider, 200)
    assert provider.force_flush()
    events = _spooled(tmp_path / "spool")
    assert len(events) == 200
    assert {(e.service, e.version, e.operation) for e in events} == {("shop", "A", "GET /items")}
    provider.shutdown()
    assert exporter.stats.exported == 200
    assert exporter.stats.dropped == 0
    # After shutdown nothing is written and the drop is counted, never raised.
    assert exporter.export([]) is SpanExportResult.FAILURE


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    exporter = SelfHealSpanExporter(spool_dir=tmp_path)
    provider = _provider(exporter)
    _emit(provider, 10)
    provider.shutdown()
    segment = spool.segments(tmp_path)[0]
    with segment.open("ab") as handle:
        handle.write(b'{"type": "TelemetryEvent", "serv')  # a crash mid-write
    read = spool.read_segment(segment)
    assert len(read.events) == 10
    assert read.pending_bytes > 0


def test_direct_mode_posts_to_the_receiver(tmp_path: Path) -> None:
    got: list[TelemetryEvent] = []
    with Receiver(got.extend, ReceiverSettings(port=0, token="t0ken")) as receiver:
        exporter = SelfHealSpanExporter(endpoint=receiver.url, token="t0ken")
        provider = _provider(exporter)
        _emit(provider, 300)
        provider.shutdown()
        assert wait_until_stored(receiver, 300)
    assert len(got) == 300
    assert exporter.stats.posted == 300
    assert got[0].location.line in range(300)


def test_unreachable_endpoint_falls_back_to_the_spool(tmp_path: Path) -> None:
    with Receiver(list.append, ReceiverSettings(port=0)) as receiver:
        url = receiver.url  # a port that is closed once this block ends
    exporter = SelfHealSpanExporter(spool_dir=tmp_path, endpoint=url, timeout_s=0.5)
    provider = _provider(exporter)
    _emit(provider, 50)
    provider.shutdown()
    assert exporter.stats.failures >= 1
    assert exporter.stats.spooled == 50
    assert len(_spooled(tmp_path)) == 50


def test_no_spool_and_no_agent_counts_drops(tmp_path: Path) -> None:
    with Receiver(list.append, ReceiverSettings(port=0)) as receiver:
        url = receiver.url
    exporter = SelfHealSpanExporter(endpoint=url, timeout_s=0.5)
    provider = _provider(exporter)
    _emit(provider, 20)
    provider.shutdown()
    assert exporter.stats.dropped == 20
    assert exporter.stats.exported == 0


def test_full_spool_drops_instead_of_growing(tmp_path: Path) -> None:
    exporter = SelfHealSpanExporter(spool_dir=tmp_path, spool_max_bytes=2048)
    provider = _provider(exporter)
    for _ in range(5):
        _emit(provider, 20)
        provider.force_flush()
    provider.shutdown()
    assert exporter.stats.dropped > 0
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 2048 + 20 * 2048


def instrument_command() -> list[str]:
    exe = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert exe, "opentelemetry-instrument is not installed (test extra)"
    return [exe, sys.executable, "main.py"]


def run_app(version: str, env: dict[str, str], cwd: Path = APP, requests: int = 30) -> None:
    """Start the shop under opentelemetry-instrument, as a user would."""
    full = {
        **os.environ,
        "OTEL_SERVICE_NAME": "shop",
        "OTEL_RESOURCE_ATTRIBUTES": f"service.version={version}",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "SHOP_VERSION": version,
        "SHOP_REQUESTS": str(requests),
        **env,
    }
    proc = subprocess.run(
        instrument_command(),
        check=False,
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_otel_traces_exporter_selfheal_in_an_instrumented_app(tmp_path: Path) -> None:
    run_app(
        "A", {"OTEL_TRACES_EXPORTER": "selfheal", "SELFHEAL_SPOOL_DIR": str(tmp_path)}, requests=5
    )
    events = _spooled(tmp_path)
    ops = sorted({e.operation for e in events})
    assert ops == ["GET /items", "POST /checkout", "SELECT item"]
    assert len(events) == 5 * 5
    items = next(e for e in events if e.operation == "GET /items")
    assert items.location.function == "shop.list_items"
    assert items.location.file.endswith("shop.py")
    assert items.version == "A"


def test_selfheal_endpoint_env_sends_straight_to_the_agent(tmp_path: Path) -> None:
    got: list[TelemetryEvent] = []
    with Receiver(got.extend, ReceiverSettings(port=0)) as receiver:
        env = {"OTEL_TRACES_EXPORTER": "selfheal", "SELFHEAL_ENDPOINT": receiver.url}
        run_app("B", {**env, "SELFHEAL_SPOOL_DIR": ""}, requests=6)
        assert wait_until_stored(receiver, 6 * 5)
    assert len(got) == 6 * 5
    errors = [e for e in got if e.exception_type]
    assert {e.exception_type for e in errors} == {"ValueError"}
    assert all("price" in e.exception_signature for e in errors)


def test_spool_batch_lines_read_back_as_span_to_event_makes_them(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from agent.otel import span_to_event

    memory = InMemorySpanExporter()
    finished = []
    for name, version in (("shop", "A"), ("cart", "")):
        attrs = {"service.name": name} | ({"service.version": version} if version else {})
        provider = TracerProvider(resource=Resource.create(attrs))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("GET /pay", attributes={"code.function": "pay"}):
            with tracer.start_as_current_span("charge ✓", attributes={"tags": ("a", "b")}) as s:
                s.set_attribute("ratio", 0.5)
                s.record_exception(ValueError('bad "card"'))
                s.set_status(Status(StatusCode.ERROR))
            with tracer.start_as_current_span("ok") as s:
                s.set_status(Status(StatusCode.OK))
        finished.extend(memory.get_finished_spans())
        memory.clear()
    exporter = SelfHealSpanExporter(spool_dir=tmp_path)
    assert exporter.export(finished) is SpanExportResult.SUCCESS
    exporter.shutdown()
    lines = spool.segments(tmp_path)[0].read_bytes().splitlines()
    assert [line.count(b'"SpanBatch"') for line in lines[1:]] == [1, 1]  # one line per service
    got = _spooled(tmp_path)
    want = [span_to_event(s) for s in finished]
    assert got == want
    assert [e.exception_message for e in got if e.exception_signature] == ['bad "card"'] * 2
    assert {e.attributes.get("tags") for e in got} == {"a,b", None}
    assert exporter.stats.exported == len(finished) == 6


def test_bad_batch_rows_are_counted_and_event_lines_still_read(tmp_path: Path) -> None:
    good = [
        "op",
        10,
        25,
        2,
        1,
        2,
        0,
        {"code.function.name": "m.f"},
        ["E", "boom", ""],
    ]
    with spool.SpoolWriter(tmp_path) as writer:
        writer.write_batch("svc", "1", [good, ["op", "x", 1, 0, 1, 2, 0, {}, 0], [1]])
        writer.write([TelemetryEvent(spool.rec.EventSource.SPAN, "svc", "old", 1, 2)])
        path = writer.path
    assert path is not None
    read = spool.read_segment(path)
    assert read.malformed == 2
    first, old = read.events
    assert (first.operation, first.duration_ns, first.trace_id) == ("op", 15, f"{1:032x}")
    assert first.exception_signature == "E@:m.f" and first.status.value == "error"
    assert old.operation == "old"
