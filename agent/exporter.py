"""SelfHealSpanExporter: the OTel SDK exporter that feeds the agent (spool file or OTLP/HTTP).

Configuration, by constructor argument or environment variable (the SDK builds the exporter
without arguments when `OTEL_TRACES_EXPORTER=selfheal`):

- `SELFHEAL_ENDPOINT`: the agent's OTLP/HTTP URL, e.g. `http://127.0.0.1:4318/v1/traces`.
- `SELFHEAL_SPOOL_DIR`: a spool directory the agent reads (default `.selfheal/spool` under the
  project root when no endpoint is set). With both set, the spool catches what the endpoint
  could not take.
- `SELFHEAL_TOKEN`: bearer token for an endpoint that asks for one.
- `SELFHEAL_EXPORT_TIMEOUT`: seconds for one HTTP attempt (default 2).
- `SELFHEAL_SPOOL_MAX_MB`: spool size above which new spans are dropped (default 512).
"""

from __future__ import annotations

import http.client
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agent import otlp
from agent.otel import resource_names, span_to_event
from agent.records import TelemetryEvent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from agent.spool import SpoolWriter

log = logging.getLogger("selfheal.exporter")

ENV_ENDPOINT = "SELFHEAL_ENDPOINT"
ENV_SPOOL = "SELFHEAL_SPOOL_DIR"
ENV_TOKEN = "SELFHEAL_TOKEN"
ENV_TIMEOUT = "SELFHEAL_EXPORT_TIMEOUT"
ENV_SPOOL_MAX = "SELFHEAL_SPOOL_MAX_MB"
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_SPOOL_MAX_MB = 512.0
BACKOFF_S = 5.0  # after a failed POST, skip the endpoint this long instead of waiting again
RESCAN_S = 10.0  # how often the spool's size is re-read (the agent deletes consumed segments)


@dataclass
class ExportStats:
    exported: int = 0  # spans delivered (to the endpoint or the spool)
    dropped: int = 0  # spans lost: shut down, spool full, endpoint refused with no spool
    spooled: int = 0
    posted: int = 0
    failures: int = 0  # failed deliveries (each may have fallen back to the spool)


class SelfHealSpanExporter(SpanExporter):
    """Converts finished spans to TelemetryEvents and delivers them; never raises into the app."""

    def __init__(
        self,
        spool_dir: Path | str | None = None,
        endpoint: str | None = None,
        *,
        token: str | None = None,
        timeout_s: float | None = None,
        spool_max_bytes: int | None = None,
    ) -> None:
        env = os.environ
        endpoint = endpoint if endpoint is not None else env.get(ENV_ENDPOINT, "")
        spool = spool_dir if spool_dir is not None else env.get(ENV_SPOOL, "")
        if not endpoint and not spool:
            spool = _default_spool()
        self.endpoint = endpoint
        self.spool_dir = Path(spool) if spool else None
        self.token = token if token is not None else env.get(ENV_TOKEN, "")
        self.timeout_s = timeout_s if timeout_s is not None else _env_float(ENV_TIMEOUT, 2.0)
        max_mb = _env_float(ENV_SPOOL_MAX, DEFAULT_SPOOL_MAX_MB)
        self.spool_max_bytes = spool_max_bytes or int(max_mb * 1024 * 1024)
        self.stats = ExportStats()
        self._lock = threading.Lock()
        self._shut = False
        self._writer: SpoolWriter | None = None
        self._writer_pid = 0
        self._spool_bytes = 0
        self._scanned_at = 0.0
        self._conn: http.client.HTTPConnection | None = None
        self._skip_endpoint_until = 0.0
        self._url = urllib.parse.urlsplit(endpoint) if endpoint else None

    # The SpanExporter contract -----------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut:
            self.stats.dropped += len(spans)
            return SpanExportResult.FAILURE
        try:
            if self._spool_only():
                with self._lock:
                    delivered = self._spool_spans(spans)
            else:
                events = self._convert(spans)
                with self._lock:
                    delivered = self._deliver(events)
        except Exception:  # the app must never see our trouble
            log.exception("selfheal exporter: export failed")
            self.stats.dropped += len(spans)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if delivered else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
            self._close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            try:
                if self._writer is not None:
                    self._writer.flush()
            except OSError:
                log.warning("selfheal exporter: spool flush failed", exc_info=True)
                return False
        return True

    # Delivery ----------------------------------------------------------------------------

    def _convert(self, spans: Sequence[ReadableSpan]) -> list[TelemetryEvent]:
        events = []
        for span in spans:
            try:
                events.append(span_to_event(span))
            except Exception:  # one odd span is dropped, not the batch
                log.debug("selfheal exporter: span %r not converted", span, exc_info=True)
                self.stats.dropped += 1
        return events

    def _spool_only(self) -> bool:
        """No endpoint to try now: spans go to the spool as batch lines, never as records."""
        if self.spool_dir is None:
            return False
        return self._url is None or time.monotonic() < self._skip_endpoint_until

    def _spool_spans(self, spans: Sequence[ReadableSpan]) -> bool:
        """The spool's batch lines straight from the SDK spans: one encoder call per group."""
        if self._spool_size() >= self.spool_max_bytes:
            self.stats.dropped += len(spans)
            return False
        groups, odd = batch_rows(spans)
        writer = self._spool_writer()
        written = stored = 0
        try:
            for (service, version), rows in groups.items():
                try:
                    written += writer.write_batch(service, version, rows)
                except (TypeError, ValueError):  # a value JSON cannot hold: the record path
                    odd.extend(spans_of(spans, service, version))
                    continue
                stored += len(rows)
            if odd:
                events = self._convert(odd)
                written += writer.write(events)
                stored += len(events)
        except OSError:
            log.warning("selfheal exporter: cannot write the spool", exc_info=True)
            self.stats.failures += 1
            self.stats.dropped += len(spans) - stored
            return False
        self._spool_bytes += written
        self.stats.spooled += stored
        self.stats.exported += stored
        return True

    def _deliver(self, events: list[TelemetryEvent]) -> bool:
        if not events:
            return True
        if self._url is not None and time.monotonic() >= self._skip_endpoint_until:
            if self._post(events):
                return True
            self.stats.failures += 1
            self._skip_endpoint_until = time.monotonic() + BACKOFF_S
        if self.spool_dir is not None:
            return self._spool(events)
        self.stats.dropped += len(events)
        return False

    def _spool(self, events: list[TelemetryEvent]) -> bool:
        if self._spool_size() >= self.spool_max_bytes:
            self.stats.dropped += len(events)
            return False
        writer = self._spool_writer()
        try:
            written = writer.write(events)
        except OSError:
            log.warning("selfheal exporter: cannot write the spool", exc_info=True)
            self.stats.failures += 1
            self.stats.dropped += len(events)
            return False
        self._spool_bytes += written
        self.stats.spooled += len(events)
        self.stats.exported += len(events)
        return True

    def _spool_writer(self) -> SpoolWriter:
        # A forked child gets its own writer: one process per segment file is the spool's rule.
        if self._writer is None or self._writer_pid != os.getpid():
            from agent.spool import SpoolWriter

            assert self.spool_dir is not None
            self._writer = SpoolWriter(self.spool_dir)
            self._writer_pid = os.getpid()
        return self._writer

    def _spool_size(self) -> int:
        now = time.monotonic()
        if now - self._scanned_at >= RESCAN_S:
            self._scanned_at = now
            self._spool_bytes = _directory_bytes(self.spool_dir)
        return self._spool_bytes

    def _post(self, events: list[TelemetryEvent]) -> bool:
        body = otlp.encode_protobuf(events)
        headers = {"Content-Type": "application/x-protobuf"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):  # a kept-alive connection the server closed gets one retry
            try:
                conn = self._connection()
                conn.request("POST", self._path(), body=body, headers=headers)
                resp = conn.getresponse()
                reply = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                if attempt == 2:
                    log.debug("selfheal exporter: POST to %s failed: %s", self.endpoint, exc)
                continue
            if resp.status != 200:
                log.debug("selfheal exporter: %s answered %d", self.endpoint, resp.status)
                return False
            self._count_rejected(reply)
            self.stats.posted += len(events)
            self.stats.exported += len(events)
            return True
        return False

    def _count_rejected(self, reply: bytes) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        try:
            rejected = ExportTraceServiceResponse.FromString(reply).partial_success.rejected_spans
        except Exception:  # an odd reply body still means the spans arrived
            return
        self.stats.dropped += int(rejected)

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            assert self._url is not None
            cls = (
                http.client.HTTPSConnection
                if self._url.scheme == "https"
                else http.client.HTTPConnection
            )
            self._conn = cls(
                self._url.hostname or "127.0.0.1", self._url.port, timeout=self.timeout_s
            )
        return self._conn

    def _path(self) -> str:
        assert self._url is not None
        return self._url.path or "/v1/traces"

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _close(self) -> None:
        self._drop_connection()
        if self._writer is not None:
            try:
                self._writer.flush()
            except OSError:
                log.warning("selfheal exporter: spool flush failed", exc_info=True)
            self._writer.close()
            self._writer = None


_STATUS_CODES: list[object] = []  # StatusCode.OK, StatusCode.ERROR
Group = tuple[str, str]


def batch_rows(spans: Sequence[ReadableSpan]) -> tuple[dict[Group, list[list[object]]], list[Any]]:
    """Spool batch rows (`spool.BATCH_FIELDS`) per (service, version), and the spans that are
    not plain SDK spans (they take the record path). The per-span work is field reads only."""
    if not _STATUS_CODES:
        from opentelemetry.trace import StatusCode

        _STATUS_CODES.extend((StatusCode.OK, StatusCode.ERROR))
    groups: dict[Group, list[list[object]]] = {}
    odd: list[Any] = []
    resource: object = _NOTHING
    rows: list[list[object]] = []
    for span in spans:
        try:
            if span.resource is not resource:
                resource = span.resource
                rows = groups.setdefault(resource_names(resource), [])
            ctx, parent = span.context, span.parent
            attrs = span._attributes._dict  # type: ignore[union-attr]  # the SDK's own dict
            events = span._events  # .events would copy it into a tuple, per span
            exc = _exception(events) if len(events) else 0
            start = span.start_time or 0
            rows.append(
                [
                    span.name,
                    start,
                    span.end_time or start,
                    _status_code(span.status.status_code),
                    ctx.trace_id,
                    ctx.span_id,
                    parent.span_id if parent is not None else 0,
                    attrs,
                    exc,
                ]
            )
        except (AttributeError, KeyError, TypeError):
            odd.append(span)
    return groups, odd


_NOTHING = object()


def _status_code(code: object) -> int:
    # Identity checks: StatusCode hashing goes through Enum.__hash__, a Python-level call.
    return 2 if code is _STATUS_CODES[1] else 1 if code is _STATUS_CODES[0] else 0


def _exception(events: Sequence[Any]) -> list[str] | int:
    found: list[str] | int = 0
    for event in events:  # the last exception event wins, as in otel.span_to_event
        if event.name == "exception":
            ev = event.attributes or {}
            found = [
                str(ev.get("exception.type", "")),
                str(ev.get("exception.message", "")),
                str(ev.get("exception.stacktrace", "")),
            ]
    return found


def spans_of(spans: Sequence[ReadableSpan], service: str, version: str) -> list[ReadableSpan]:
    return [s for s in spans if resource_names(s.resource) == (service, version)]


def _default_spool() -> Path:
    from agent.config import find_root

    return find_root(Path.cwd()) / ".selfheal" / "spool"


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        log.warning("selfheal exporter: %s=%r is not a number; using %s", name, raw, default)
        return default
    return value if value > 0 else default


def _directory_bytes(directory: Path | None) -> int:
    if directory is None or not directory.is_dir():
        return 0
    total = 0
    for entry in os.scandir(directory):
        try:
            total += entry.stat().st_size
        except OSError:
            continue
    return total
