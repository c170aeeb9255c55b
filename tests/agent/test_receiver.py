"""The OTLP/HTTP receiver over loopback: real clients, real SQLite, hostile input."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import otlp
from agent.errors import ConfigError
from agent.receiver import Receiver, ReceiverSettings, gunzip_limited, wait_until_stored
from agent.records import CodeLocation, EventSource, SpanStatus, TelemetryEvent
from agent.store import Store

PB = "application/x-protobuf"


def _event(i: int, **kw: object) -> TelemetryEvent:
    base: dict[str, object] = {
        "source": EventSource.SPAN,
        "service": "shop",
        "version": "1.0",
        "operation": "GET /items",
        "start_ns": 1_700_000_000_000_000_000 + i,
        "duration_ns": 1000 + i,
        "trace_id": f"{i + 1:032x}",
        "span_id": f"{i + 1:016x}",
        "location": CodeLocation("shop/views.py", "shop.views.items", 12),
        "attributes": {"code.function.name": "shop.views.items", "http.status_code": 200},
    }
    base.update(kw)
    return TelemetryEvent(**base)  # type: ignore[arg-type]


def _post(
    port: int, body: bytes, ctype: str = PB, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST", "/v1/traces", body=body, headers={"Content-Type": ctype, **(headers or {})}
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class _StoreSink:
    """Writes each batch into one run of a real store, as the telemetry phase would."""

    def __init__(self, path: Path) -> None:
        self.store = Store.open(path)
        self.run_id = self.store.begin_run("otlp")
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, events: list[TelemetryEvent]) -> None:
        self.gate.wait(30)
        self.store.insert_events(self.run_id, events)

    def count(self) -> int:
        row = self.store.conn.execute(
            "SELECT count(*) FROM spans WHERE run_id = ?", (self.run_id,)
        ).fetchone()
        return int(row[0])


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[_StoreSink]:
    s = _StoreSink(tmp_path / "selfheal.db")
    yield s
    s.gate.set()
    s.store.close()


def _settings(**kw: object) -> ReceiverSettings:
    base: dict[str, object] = {
        "port": 0,
        "max_body": 256 * 1024,
        "header_timeout_s": 0.5,
        "body_timeout_s": 0.5,
        "idle_timeout_s": 2.0,
    }
    base.update(kw)
    return ReceiverSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def receiver(sink: _StoreSink) -> Iterator[Receiver]:
    with Receiver(sink, _settings()) as r:
        yield r


def test_sdk_otlp_exporter_spans_reach_the_store(receiver: Receiver, sink: _StoreSink) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": "shop", "service.version": "2.0"})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.url)))
    tracer = provider.get_tracer("test")
    for _ in range(300):
        with tracer.start_as_current_span("GET /items") as parent:
            parent.set_attribute("code.function", "items")
            parent.set_attribute("code.namespace", "shop.views")
            with tracer.start_as_current_span("SELECT items"):
                pass
    provider.shutdown()
    assert wait_until_stored(receiver, 600)
    assert sink.count() == 600
    events = sink.store.events(sink.run_id)
    parents = [e for e in events if e.operation == "GET /items"]
    assert parents[0].service == "shop"
    assert parents[0].version == "2.0"
    assert parents[0].location.function == "shop.views.items"
    children = [e for e in events if e.operation == "SELECT items"]
    assert {c.parent_span_id for c in children} == {p.span_id for p in parents}


def test_json_and_gzip_bodies_are_accepted(receiver: Receiver, sink: _StoreSink) -> None:
    events = [_event(i) for i in range(10)]
    pb = otlp.encode_protobuf(events)
    status, headers, body = _post(
        receiver.port, gzip.compress(pb), headers={"Content-Encoding": "gzip"}
    )
    assert (status, headers["content-type"], body) == (200, PB, b"")
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "checkout",
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "status": {"code": 2},
                                "attributes": [
                                    {"key": "code.lineno", "value": {"intValue": "7"}},
                                    {
                                        "key": "code.filepath",
                                        "value": {"stringValue": "shop/pay.py"},
                                    },
                                ],
                                "events": [
                                    {
                                        "name": "exception",
                                        "attributes": [
                                            {
                                                "key": "exception.type",
                                                "value": {"stringValue": "KeyError"},
                                            }
                                        ],
                                    }
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    status, headers, body = _post(receiver.port, json.dumps(doc).encode(), "application/json")
    assert (status, headers["content-type"], body) == (200, "application/json", b"{}")
    assert wait_until_stored(receiver, 11)
    checkout = next(e for e in sink.store.events(sink.run_id) if e.operation == "checkout")
    assert checkout.trace_id == "5b8efff798038103d269b633813fc60c"
    assert checkout.duration_ns == 1_000_000_000
    assert checkout.status is SpanStatus.ERROR
    assert checkout.location == CodeLocation("shop/pay.py", "", 7)
    assert checkout.exception_signature.startswith("KeyError")


def test_partial_success_names_rejected_spans(receiver: Receiver, sink: _StoreSink) -> None:
    good = [_event(i) for i in range(3)]
    bad = _event(9, trace_id="00" * 16)
    status, _, body = _post(receiver.port, otlp.encode_protobuf([*good, bad]))
    assert status == 200
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    reply = ExportTraceServiceResponse.FromString(body)
    assert reply.partial_success.rejected_spans == 1
    assert "trace_id" in reply.partial_success.error_message
    assert wait_until_stored(receiver, 3)
    assert sink.count() == 3


@pytest.mark.parametrize(
    ("body", "ctype", "headers", "status"),
    [
        (b"\xff\xfe garbage", PB, {}, 400),
        (b"{not json", "application/json", {}, 400),
        (b"[1, 2]", "application/json", {}, 400),
        (b"spans", "text/plain", {}, 415),
        (b"spans", PB, {"Content-Encoding": "br"}, 415),
        (gzip.compress(b"x")[:-4], PB, {"Content-Encoding": "gzip"}, 400),
        (b"x" * (256 * 1024 + 1), PB, {}, 413),
        (b"", PB, {"Host": "evil.example:4318"}, 403),
    ],
    ids=["protobuf", "json", "json-array", "ctype", "encoding", "torn-gzip", "size", "host"],
)
def test_bad_requests_get_their_status(
    receiver: Receiver, body: bytes, ctype: str, headers: dict[str, str], status: int
) -> None:
    got, _, _ = _post(receiver.port, body, ctype, headers)
    assert got == status
    assert _post(receiver.port, otlp.encode_protobuf([_event(1)]))[0] == 200


def _gzip_bomb(mib: int) -> bytes:
    """Zeros compressed a MiB at a time, so the test itself never holds the inflated size."""
    import zlib

    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    parts = [deflate.compress(zeros) for _ in range(mib)]
    return b"".join(parts) + deflate.flush()


def test_gzip_bomb_is_413_and_memory_stays_bounded(receiver: Receiver) -> None:
    bomb = _gzip_bomb(200)
    assert len(bomb) < receiver.settings.max_body
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status, _, _ = _post(receiver.port, bomb, headers={"Content-Encoding": "gzip"})
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert status == 413
    assert (after - before) < 64 * 1024  # KiB: never near the 200 MiB it would inflate to
    with pytest.raises(Exception, match="cap"):
        gunzip_limited(bomb, 1024)


def test_path_method_and_token(sink: _StoreSink) -> None:
    with Receiver(sink, _settings(token="s3cret")) as r:
        assert _post(r.port, b"")[0] == 401
        assert _post(r.port, b"", headers={"Authorization": "Bearer wrong"})[0] == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert _post(r.port, otlp.encode_protobuf([_event(1)]), headers=ok)[0] == 200
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
        conn.request("GET", "/v1/traces")
        assert conn.getresponse().status == 405
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
        conn.request("POST", "/v1/metrics", body=b"")
        assert conn.getresponse().status == 404
        conn.close()


def test_wide_bind_needs_a_token(sink: _StoreSink) -> None:
    with pytest.raises(ConfigError, match="needs a token"):
        Receiver(sink, _settings(host="0.0.0.0"))


def test_full_queue_answers_503_with_retry_after(sink: _StoreSink) -> None:
    sink.gate.clear()  # the store is stuck: the writer holds its batch, the queue fills
    body = otlp.encode_protobuf([_event(j) for j in range(10)])
    limits = _settings(max_queue_bytes=2 * len(body), batch_spans=10, queue_wait_s=0.3)
    with Receiver(sink, limits) as r:
        first = _post(r.port, body)
        results: list[tuple[int, dict[str, str], bytes]] = []
        clients = [
            threading.Thread(target=lambda: results.append(_post(r.port, body))) for _ in range(4)
        ]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        statuses = sorted(status for status, _, _ in results)
        assert first[0] == 200
        assert statuses == [503] * 4  # two refused at once, two after waiting in the queue
        assert all(h["retry-after"] == "1" for _, h, _ in results)
        sink.gate.set()
        for _ in range(50):  # as a client honouring Retry-After would, only faster
            if _post(r.port, body)[0] == 200:
                break
            time.sleep(0.05)
        accepted = r.stats.accepted_spans
    assert sink.count() == accepted == 20


def _raw(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def _status_of(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]) if data else 0


def test_lying_content_length_times_out_with_408(receiver: Receiver) -> None:
    sock = _raw(receiver.port)
    sock.sendall(
        b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf"
        b"\r\nContent-Length: 1000\r\n\r\nshort"
    )
    assert _status_of(sock) == 408
    sock.close()


def test_slowloris_is_cut_off_while_others_are_served(receiver: Receiver) -> None:
    sock = _raw(receiver.port)
    started = time.monotonic()
    status = 0
    try:
        for byte in b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaa":
            sock.sendall(bytes([byte]))
            assert _post(receiver.port, otlp.encode_protobuf([_event(byte)]))[0] == 200
            time.sleep(0.05)
    except (BrokenPipeError, ConnectionResetError):
        pass
    status = _status_of(sock)
    sock.close()
    assert status == 408
    assert time.monotonic() - started < 3.0


@pytest.mark.slow
@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda kids: (
                st.lists(kids, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        ["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "name", "x"]
                    ),
                    kids,
                    max_size=4,
                )
            ),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    ctype=st.sampled_from([PB, "application/json"]),
)
def test_hypothesis_payloads_never_break_the_receiver(
    hostile: tuple[Receiver, _StoreSink, http.client.HTTPConnection], body: bytes, ctype: str
) -> None:
    _, _, conn = hostile
    conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": ctype})
    resp = conn.getresponse()
    resp.read()
    assert resp.status in (200, 400)


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[Receiver, _StoreSink, http.client.HTTPConnection]]:
    # One server and one keep-alive connection for all examples keeps 1,000 of them fast.
    sink = _StoreSink(tmp_path / "selfheal.db")
    r = Receiver(sink, _settings(idle_timeout_s=30.0)).start()
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
    yield r, sink, conn
    conn.close()
    assert _post(r.port, otlp.encode_protobuf([_event(1)]))[0] == 200  # still up
    r.stop()
    # Nothing accepted is lost: every span answered 200 is in the store.
    assert sink.count() == r.stats.accepted_spans
    sink.store.close()


def _chunked(port: int, body: bytes, chunk: int) -> int:
    sock = _raw(port)
    head = (
        b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf"
        b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(head + framed)  # may be refused before the whole body is sent
    status = _status_of(sock)
    sock.close()
    return status


def test_chunked_bodies_are_read_and_capped(receiver: Receiver, sink: _StoreSink) -> None:
    body = otlp.encode_protobuf([_event(i) for i in range(20)])
    assert _chunked(receiver.port, body, 100) == 200
    assert wait_until_stored(receiver, 20)
    assert sink.count() == 20
    assert _chunked(receiver.port, b"x" * (300 * 1024), 64 * 1024) == 413


def test_expect_100_continue(receiver: Receiver) -> None:
    body = otlp.encode_protobuf([_event(1)])
    sock = _raw(receiver.port)
    sock.sendall(
        b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf"
        b"\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    assert _status_of(sock) == 100
    sock.sendall(body)
    assert b" 200 " in sock.recv(4096)
    sock.close()


def test_a_busy_port_is_one_clear_error_and_no_thread_is_left(sink: _StoreSink) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            Receiver(sink, _settings(port=port)).start()
    assert not [t for t in threading.enumerate() if t.name.startswith("selfheal-receiver")]
