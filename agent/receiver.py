"""An OTLP/HTTP trace receiver: POST /v1/traces into a bounded queue, one writer thread."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hmac
import ipaddress
import logging
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent import otlp
from agent.errors import ConfigError
from agent.records import TelemetryEvent

if TYPE_CHECKING:
    from agent.conductor import Conductor

log = logging.getLogger("selfheal.receiver")

MiB = 1024 * 1024
TRACES_PATH = "/v1/traces"
Sink = Callable[[list[TelemetryEvent]], None]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
# google.rpc.Code values for the error bodies OTLP asks for.
_RPC_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 408: 4, 413: 3, 415: 3, 429: 8, 503: 14}
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class ReceiverSettings:
    """Where to listen and the limits that keep a hostile or broken client harmless."""

    host: str = "127.0.0.1"
    port: int = 4318
    token: str = ""  # required (as `Authorization: Bearer ...`) for any non-loopback bind
    max_body: int = 20 * MiB  # before and after decompression
    max_queue_spans: int = 32_768  # decoded but not yet stored; beyond this: 503
    max_queue_bytes: int = 64 * MiB  # bodies received but not yet decoded; beyond this: 503
    batch_spans: int = 8_192  # the writer hands the sink up to this many spans at once
    header_timeout_s: float = 10.0  # from the first byte of a request to the end of its head
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0  # a keep-alive connection with no new request is closed
    max_connections: int = 128
    bodies_in_flight: int = 4  # bodies being read at once (each up to max_body)
    allowed_hosts: tuple[str, ...] = ()  # Host header names accepted besides loopback names
    retry_after_s: int = 1
    ack_after_store: bool = False  # answer 200 only once the sink has stored the spans
    queue_wait_s: float = 10.0  # a body not decoded by then is dropped from the queue: 503


@dataclass
class ReceiverStats:
    """Counters, updated by the loop and writer threads; read them for status and tests."""

    requests: int = 0
    accepted_spans: int = 0
    rejected_spans: int = 0
    stored_spans: int = 0
    lost_spans: int = 0  # accepted, then the sink failed on them
    batches: int = 0
    refused: dict[int, int] = field(default_factory=dict)  # status code -> count

    def refuse(self, status: int) -> None:
        self.refused[status] = self.refused.get(status, 0) + 1


class _HttpError(Exception):
    def __init__(self, status: int, message: str, close: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]


@dataclass
class _Work:
    """One accepted body on its way through the writer: decode, answer, store."""

    raw: bytes
    encoding: str
    ctype: str
    decoded: concurrent.futures.Future[otlp.Decoded | _HttpError]
    stored: concurrent.futures.Future[None] | None = None


class WorkQueue:
    """Bodies waiting for the writer, bounded in bytes and in spans not yet stored.

    `offer` never blocks: a full queue is the client's 503. One thread decodes and stores, so
    the CPU-bound decoding never fights the store's SQLite calls for the GIL (two such threads
    convoy: each SQLite step gives the GIL away and waits a switch interval to get it back).
    """

    def __init__(self, max_bytes: int, max_spans: int) -> None:
        self.max_bytes = max_bytes
        self.max_spans = max_spans
        self._items: collections.deque[_Work] = collections.deque()
        self._bytes = 0  # queued bodies
        self._spans = 0  # decoded, not yet stored
        self._cond = threading.Condition()
        self._closed = False

    def offer(self, work: _Work) -> bool:
        with self._cond:
            full = self._bytes + len(work.raw) > self.max_bytes or self._spans >= self.max_spans
            if self._closed or (full and self._items):
                return False  # an empty queue takes one body of any size (each is capped)
            self._items.append(work)
            self._bytes += len(work.raw)
            self._cond.notify()
            return True

    def take(self, max_items: int, wait: bool) -> list[_Work] | None:
        """What is queued (waiting for it if asked); None once closed and drained."""
        with self._cond:
            while wait and not self._items and not self._closed:
                self._cond.wait()
            if not self._items and self._closed:
                return None
            taken: list[_Work] = []
            while self._items and len(taken) < max_items:
                taken.append(self._items.popleft())
            return taken

    def decoded(self, work: _Work, spans: int) -> None:
        with self._cond:
            self._bytes -= len(work.raw)
            self._spans += spans

    def stored(self, spans: int) -> None:
        with self._cond:
            self._spans -= spans

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def pending_spans(self) -> int:
        return self._spans


class Receiver:
    """The HTTP server (an asyncio loop on one thread) and its writer thread."""

    def __init__(self, sink: Sink, settings: ReceiverSettings | None = None) -> None:
        self.settings = settings or ReceiverSettings()
        _check_bind(self.settings)
        self.sink = sink
        self.stats = ReceiverStats()
        self.queue = WorkQueue(self.settings.max_queue_bytes, self.settings.max_queue_spans)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._loop_thread: threading.Thread | None = None
        self._writer_thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._connections = 0
        self._bodies: asyncio.Semaphore | None = None
        self._hosts = _allowed_hosts(self.settings)

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> Receiver:
        self._writer_thread = threading.Thread(
            target=self._write_loop, name="selfheal-receiver-writer"
        )
        self._writer_thread.start()
        self._loop_thread = threading.Thread(target=self._run_loop, name="selfheal-receiver")
        self._loop_thread.start()
        self._started.wait()
        if self._start_error is not None:
            self.stop()
            err = self._start_error
            raise ConfigError(
                f"receiver cannot listen on {self.settings.host}:{self.settings.port}: {err}"
            ) from None
        log.info("receiver listening on %s:%d", self.settings.host, self.port)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop listening, then store everything already accepted before returning."""
        loop = self._loop
        if loop is not None and self._loop_thread is not None and self._loop_thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        if self._loop_thread is not None:
            self._loop_thread.join(timeout)
        self.queue.close()
        if self._writer_thread is not None:
            self._writer_thread.join(timeout)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{TRACES_PATH}"

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._bodies = asyncio.Semaphore(self.settings.bodies_in_flight)
            self._server = loop.run_until_complete(
                asyncio.start_server(
                    self._serve_connection,
                    self.settings.host,
                    self.settings.port,
                    limit=64 * 1024,
                )
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except OSError as exc:
            self._start_error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            self._shutdown_loop(loop)

    def _shutdown_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._server is not None
        self._server.close()
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(self._server.wait_closed())
        loop.close()

    # Writer ------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        events: list[TelemetryEvent] = []
        waiting: list[concurrent.futures.Future[None]] = []
        while True:
            # Block only when nothing is decoded and waiting to be stored.
            work = self.queue.take(64, wait=not events)
            if work is None:
                return
            for item in work:
                self._decode_one(item, events, waiting)
                if len(events) >= self.settings.batch_spans:
                    self._store(events, waiting)
                    events, waiting = [], []
            if events and not work:
                self._store(events, waiting)
                events, waiting = [], []

    def _decode_one(
        self,
        item: _Work,
        events: list[TelemetryEvent],
        waiting: list[concurrent.futures.Future[None]],
    ) -> None:
        if not item.decoded.set_running_or_notify_cancel():
            self.queue.decoded(item, 0)  # its client gave up waiting and got a 503
            if item.stored is not None:
                _settle(item.stored, None)
            return
        result = _decode(item.raw, item.encoding, item.ctype, self.settings.max_body)
        spans = len(result.events) if isinstance(result, otlp.Decoded) else 0
        self.queue.decoded(item, spans)
        if spans and isinstance(result, otlp.Decoded):
            events.extend(result.events)
            if item.stored is not None:
                waiting.append(item.stored)
        elif item.stored is not None:
            _settle(item.stored, None)
        _settle_decoded(item.decoded, result)

    def _store(
        self, events: list[TelemetryEvent], waiting: list[concurrent.futures.Future[None]]
    ) -> None:
        error: BaseException | None = None
        try:
            self.sink(events)
            self.stats.stored_spans += len(events)
            self.stats.batches += 1
        except Exception as exc:  # the receiver outlives a failing store; log and count
            log.exception("receiver: storing %d spans failed", len(events))
            self.stats.lost_spans += len(events)
            error = exc
        finally:
            self.queue.stored(len(events))
        for done in waiting:
            _settle(done, error)

    # HTTP --------------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._connections += 1
        try:
            if self._connections > self.settings.max_connections:
                await self._respond(writer, 503, "text/plain", b"too many connections", True)
                return
            await self._requests(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Only `stop` cancels; ending quietly spares asyncio's stream callback, which
            # logs a cancelled connection task as an error on Python 3.11.
            pass
        finally:
            self._connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError, OSError):
                await writer.wait_closed()

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await self._read_head(reader)
            except _HttpError as err:
                self.stats.refuse(err.status)
                await self._respond(writer, err.status, "text/plain", err.message.encode(), True)
                return
            if request is None:
                return
            self.stats.requests += 1
            ctype = _media_type(request.headers.get("content-type", ""))
            reply_type = ctype if ctype in otlp.JSON_TYPES else "application/x-protobuf"
            try:
                status, body, close = await self._handle(request, reader, writer, ctype)
            except _HttpError as err:
                self.stats.refuse(err.status)
                body = otlp.status_body(reply_type, _RPC_CODE.get(err.status, 2), err.message)
                await self._respond(writer, err.status, reply_type, body, err.close)
                if err.close:
                    return
                continue
            close = close or not _keep_alive(request)
            await self._respond(writer, status, reply_type, body, close)
            if close:
                return

    async def _read_head(self, reader: asyncio.StreamReader) -> _Request | None:
        s = self.settings
        try:
            first = await asyncio.wait_for(reader.readexactly(1), s.idle_timeout_s)
        except (TimeoutError, asyncio.IncompleteReadError):
            return None  # idle keep-alive connection, or the client went away: just close
        try:
            rest = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), s.header_timeout_s)
        except TimeoutError:
            raise _HttpError(408, "request head not received in time") from None
        except asyncio.LimitOverrunError:
            raise _HttpError(431, "request head too large") from None
        except asyncio.IncompleteReadError:
            return None
        return _parse_head(first + rest)

    async def _handle(
        self,
        request: _Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ctype: str,
    ) -> tuple[int, bytes, bool]:
        self._check_request(request, ctype)
        assert self._bodies is not None
        async with self._bodies:
            raw = await self._read_body(request, reader, writer)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        work = _Work(raw, encoding, ctype, concurrent.futures.Future())
        if self.settings.ack_after_store:
            work.stored = concurrent.futures.Future()
        if not self.queue.offer(work):
            raise _HttpError(503, "queue full, retry later", close=False)
        decoded = await self._decoded(work)
        if isinstance(decoded, _HttpError):
            raise decoded
        if work.stored is not None:
            try:
                await asyncio.wrap_future(work.stored)
            except Exception:
                raise _HttpError(503, "spans could not be stored", close=False) from None
        self.stats.accepted_spans += len(decoded.events)
        self.stats.rejected_spans += decoded.rejected
        reply_type = ctype if ctype in otlp.JSON_TYPES else "application/x-protobuf"
        return 200, otlp.response_body(reply_type, decoded.rejected, decoded.reason), False

    async def _decoded(self, work: _Work) -> otlp.Decoded | _HttpError:
        """The writer's decoding of this body; a 503 if it sat queued too long (store stuck)."""
        try:
            return await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(work.decoded)), self.settings.queue_wait_s
            )
        except TimeoutError:
            if work.decoded.cancel():
                raise _HttpError(503, "store busy, retry later", close=False) from None
        return await asyncio.wrap_future(work.decoded)  # decoding had already begun

    def _check_request(self, request: _Request, ctype: str) -> None:
        path = request.target.split("?", 1)[0]
        if path != TRACES_PATH:
            raise _HttpError(404, f"no such path {path[:100]!r}; POST spans to {TRACES_PATH}")
        if request.method != "POST":
            raise _HttpError(405, f"method {request.method[:20]} not allowed; use POST")
        self._check_host(request.headers.get("host", ""))
        self._check_token(request.headers.get("authorization", ""))
        if ctype not in otlp.PROTOBUF_TYPES and ctype not in otlp.JSON_TYPES:
            raise _HttpError(
                415,
                f"content type {ctype[:60]!r} not supported; use application/x-protobuf "
                "or application/json",
            )
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            raise _HttpError(415, f"content encoding {encoding[:30]!r} not supported; use gzip")

    def _check_host(self, host_header: str) -> None:
        host = _host_name(host_header)
        if not host:
            raise _HttpError(400, "missing Host header")
        if self._hosts is not None and host not in self._hosts:
            # A browser tricked by DNS rebinding sends the attacker's name here.
            raise _HttpError(403, f"host {host[:100]!r} not allowed")

    def _check_token(self, authorization: str) -> None:
        token = self.settings.token
        if not token:
            return
        scheme, _, given = authorization.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode("utf-8", "replace"), token.encode("utf-8")
        )
        if not ok:
            raise _HttpError(401, "missing or wrong bearer token")

    async def _read_body(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes:
        s = self.settings
        length_text = request.headers.get("content-length", "")
        if length_text.strip().isdigit() and int(length_text) > s.max_body:
            raise _HttpError(413, f"body of {length_text} bytes is over the {s.max_body} byte cap")
        if request.headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits a second without it
        if "chunked" in request.headers.get("transfer-encoding", "").lower():
            try:
                return await asyncio.wait_for(_read_chunked(reader, s.max_body), s.body_timeout_s)
            except TimeoutError:
                raise _HttpError(408, "body not received in time") from None
            except asyncio.LimitOverrunError:
                raise _HttpError(400, "chunk line too long") from None
        if "content-length" not in request.headers:
            raise _HttpError(411, "Content-Length required")
        if not length_text.strip().isdigit():
            raise _HttpError(400, f"bad Content-Length {length_text[:30]!r}")
        length = int(length_text)
        try:
            return await asyncio.wait_for(reader.readexactly(length), s.body_timeout_s)
        except TimeoutError:
            raise _HttpError(408, "body not received in time") from None

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        ctype: str,
        body: bytes,
        close: bool,
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
            f"Connection: {'close' if close else 'keep-alive'}",
        ]
        if status in (429, 503):
            lines.append(f"Retry-After: {self.settings.retry_after_s}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        writer.write(head + body)
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(writer.drain(), self.settings.body_timeout_s)


def _settle_decoded(
    done: concurrent.futures.Future[otlp.Decoded | _HttpError], result: otlp.Decoded | _HttpError
) -> None:
    if not done.cancelled():
        done.set_result(result)


def _settle(done: concurrent.futures.Future[None], error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _decode(raw: bytes, encoding: str, ctype: str, cap: int) -> otlp.Decoded | _HttpError:
    """Runs on the decode thread; returns the error instead of raising across threads."""
    try:
        body = gunzip_limited(raw, cap) if encoding == "gzip" else raw
        if ctype in otlp.JSON_TYPES:
            return otlp.decode_json(body)
        return otlp.decode_protobuf(body)
    except _HttpError as err:
        return err
    except otlp.PayloadError as exc:
        return _HttpError(400, str(exc), close=False)


def gunzip_limited(data: bytes, cap: int) -> bytes:
    """Decompress gzip (several members allowed) without ever holding more than cap+1 bytes."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, cap + 1 - len(out))
        except zlib.error as exc:
            raise _HttpError(400, f"bad gzip body: {exc}", close=False) from None
        if len(out) > cap or inflater.unconsumed_tail:
            raise _HttpError(413, f"body is over the {cap} byte cap once decompressed")
        if not inflater.eof:
            raise _HttpError(400, "truncated gzip body", close=False)
        data = inflater.unused_data
    return bytes(out)


async def _read_chunked(reader: asyncio.StreamReader, cap: int) -> bytes:
    body = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _HttpError(400, "bad chunk size") from None
        if size == 0:
            await _skip_trailers(reader)
            return bytes(body)
        if len(body) + size > cap:
            raise _HttpError(413, f"body is over the {cap} byte cap")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise _HttpError(400, "bad chunk terminator")


async def _skip_trailers(reader: asyncio.StreamReader) -> None:
    while (await reader.readuntil(b"\r\n")) != b"\r\n":
        pass


def _parse_head(head: bytes) -> _Request:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # latin-1 decodes every byte; kept for clarity of intent
        raise _HttpError(400, "request head is not text") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _HttpError(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _HttpError(400, "malformed header line")
        key = name.lower()
        value = value.strip()
        unique = key in ("content-length", "host", "transfer-encoding")
        if unique and key in headers and headers[key] != value:
            raise _HttpError(400, f"conflicting {name} headers")
        headers[key] = value
    if "content-length" in headers and "transfer-encoding" in headers:
        raise _HttpError(400, "both Content-Length and Transfer-Encoding")
    return _Request(parts[0], parts[1], parts[2], headers)


def _keep_alive(request: _Request) -> bool:
    conn = request.headers.get("connection", "").lower()
    if request.version == "HTTP/1.0":
        return conn == "keep-alive"
    return conn != "close"


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def _host_name(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_bind(settings: ReceiverSettings) -> None:
    if not is_loopback(settings.host) and not settings.token:
        raise ConfigError(
            f"receiver: binding {settings.host} (not loopback) needs a token; "
            "give the receiver a token or bind 127.0.0.1"
        )
    if settings.max_body <= 0 or settings.max_queue_spans <= 0:
        raise ConfigError("receiver: max_body and max_queue_spans must be positive")


def _allowed_hosts(settings: ReceiverSettings) -> frozenset[str] | None:
    """Names the Host header may carry; None when any is fine (a token guards a wide bind)."""
    if not is_loopback(settings.host) and not settings.allowed_hosts:
        return None
    hosts = set(_LOOPBACK_NAMES) | {h.lower() for h in settings.allowed_hosts}
    hosts.add(settings.host.lower())
    return frozenset(hosts)


def phase_sink(conductor: Conductor, run_kind: str = "receiver", keep_raw: bool = True) -> Sink:
    """Store each batch through the telemetry phase (raw spans kept: detection ranks them)."""
    from agent.phases.telemetry import TelemetryRequest, ingest

    def sink(events: list[TelemetryEvent]) -> None:
        ingest(
            conductor, TelemetryRequest(events=tuple(events), run_kind=run_kind, keep_raw=keep_raw)
        )

    return sink


def wait_until_stored(receiver: Receiver, count: int, timeout: float = 10.0) -> bool:
    """Poll until `count` spans have reached the sink (for tests, benchmarks and the daemon)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if receiver.stats.stored_spans + receiver.stats.lost_spans >= count:
            return True
        time.sleep(0.005)
    return False
