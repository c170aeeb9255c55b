"""The spool: append-only segments of JSON lines (events or span batches), read by offset.

Layout: `<dir>/<created_ns:019d>-<pid>-<n:04d>.jsonl`, one writer process per file, so files
sort by creation time and no two processes ever append to the same file. The first line of a
segment is a header `{"type": "SpoolHeader", "version": 2, "pid": ..., "created_ns": ...}`;
every other line is either `records.to_json(TelemetryEvent)` (version 1 and 2) or, from
version 2, a span batch: `{"type":"SpanBatch","service":S,"version":V,"spans":[ROW, ...]}`
with one positional row per span (`BATCH_FIELDS`), which the exporter writes in one encoder
call per export instead of one record per span. A line is written with a single `write` of
the complete line, so a crash can leave at most one torn line at the end of a segment; readers
consume complete lines only and skip (and count) what does not decode.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent import records as rec
from agent.otel import span_event

SPOOL_VERSION = 2  # 2: span-batch lines besides event lines (readers take both)
HEADER_TYPE = "SpoolHeader"
BATCH_TYPE = "SpanBatch"
# A span-batch row: name, start ns, end ns, status (0 unset, 1 ok, 2 error), trace id, span id
# and parent span id as integers (0: none), attributes, exception [type, message, stack] or 0.
BATCH_FIELDS = (
    "name",
    "start_ns",
    "end_ns",
    "status",
    "trace_id",
    "span_id",
    "parent_span_id",
    "attributes",
    "exception",
)
_BATCH_STATUS = (rec.SpanStatus.UNSET, rec.SpanStatus.OK, rec.SpanStatus.ERROR)
SEGMENT_SUFFIX = ".jsonl"
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
_SERIALS = itertools.count(1)
# One encoder for every line: json.dumps with non-default arguments builds a new one per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def spool_dir(selfheal_dir: Path) -> Path:
    """The spool directory under a project's `.selfheal/`."""
    return selfheal_dir / "spool"


def is_segment(path: Path) -> bool:
    """A file named like a segment: `<digits>-<digits>-<digits>.jsonl`."""
    if path.suffix != SEGMENT_SUFFIX:
        return False
    parts = path.stem.split("-")
    return len(parts) == 3 and all(p.isdigit() for p in parts)


def segments(directory: Path) -> list[Path]:
    """The segments in a spool directory, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and is_segment(p))


def is_header(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("type") == HEADER_TYPE


class SpoolWriter:
    """Appends events to this process's current segment, rotating past `max_bytes`."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1024:
            raise ValueError(f"max_bytes {max_bytes} is too small for a spool segment")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0

    @property
    def path(self) -> Path | None:
        """The segment being written, if one is open."""
        return self._path

    def write(self, events: Iterable[rec.TelemetryEvent]) -> int:
        """Append events, one line each; returns the bytes written."""
        return self.write_lines((_COMPACT.encode(rec.to_json(e)) + "\n").encode() for e in events)

    def write_batch(self, service: str, version: str, rows: Sequence[Sequence[object]]) -> int:
        """Append one span-batch line (rows as `BATCH_FIELDS`); returns the bytes written.

        Raises TypeError or ValueError when a row holds what JSON cannot encode."""
        return self.write_lines([encode_batch(service, version, rows)])

    def write_lines(self, lines: Iterable[bytes]) -> int:
        """Append complete lines (each ending in a newline); returns the bytes written."""
        written = 0
        pending: list[bytes] = []  # complete lines bound for the current segment
        pending_size = 0
        for line in lines:
            if self._fd is None or self._size + pending_size + len(line) > self.max_bytes:
                self._write_all(b"".join(pending))
                pending, pending_size = [], 0
                self._rotate()
            pending.append(line)
            pending_size += len(line)
            written += len(line)
        # One write for the batch: still whole lines, so a crash tears at most the last one.
        self._write_all(b"".join(pending))
        return written

    def flush(self) -> None:
        """Make what was written durable (the exporter calls it from force_flush)."""
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._path = None

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rotate(self) -> None:
        self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        now = time.time_ns()
        serial = next(_SERIALS) % 10_000  # per process, so two writers never pick one name
        path = self.directory / f"{now:019d}-{os.getpid()}-{serial:04d}{SEGMENT_SUFFIX}"
        # O_EXCL: a name clash means another writer, never a file to append to.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._path = path
        self._size = 0
        header = {"type": HEADER_TYPE, "version": SPOOL_VERSION, "pid": os.getpid()}
        header["created_ns"] = now
        self._write_all((json.dumps(header, separators=(",", ":")) + "\n").encode())

    def _write_all(self, data: bytes) -> None:
        if not data:
            return
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)


def encode_batch(service: str, version: str, rows: Sequence[Sequence[object]]) -> bytes:
    """One span-batch line, newline included."""
    body = {"type": BATCH_TYPE, "service": service, "version": version, "spans": rows}
    return (_COMPACT.encode(body) + "\n").encode()


@dataclass(frozen=True)
class SegmentRead:
    """What one read of a segment found; `offset` is where the next read starts."""

    events: tuple[rec.TelemetryEvent, ...]
    offset: int
    malformed: int
    pending_bytes: int  # an incomplete last line: still being written, or torn by a crash


def read_segment(path: Path, offset: int = 0, max_events: int | None = None) -> SegmentRead:
    """Read complete lines from `offset`; an incomplete last line is left for the next read."""
    events: list[rec.TelemetryEvent] = []
    malformed = 0
    with path.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            if not line.endswith(b"\n"):
                return SegmentRead(tuple(events), offset, malformed, len(line))
            offset += len(line)
            found, bad = decode_line_events(line)
            malformed += bad
            if found:
                events.extend(found)
                if max_events is not None and len(events) >= max_events:
                    break
    return SegmentRead(tuple(events), offset, malformed, 0)


def decode_line(line: bytes) -> tuple[rec.TelemetryEvent | None, int]:
    """One spool line: (event, 0), (None, 0) for a header or blank line, (None, 1) if bad."""
    if not line.strip():
        return None, 0
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None, 1
    if is_header(obj):
        return None, 0
    return decode_event(obj)


def decode_line_events(line: bytes) -> tuple[list[rec.TelemetryEvent], int]:
    """The events of one spool line of either kind, and how many spans (or lines) were bad."""
    if not line.strip():
        return [], 0
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return [], 1
    if isinstance(obj, dict) and obj.get("type") == BATCH_TYPE:
        return decode_batch(obj)
    if is_header(obj):
        return [], 0
    event, bad = decode_event(obj)
    return ([event] if event is not None else []), bad


def decode_batch(obj: dict[str, object]) -> tuple[list[rec.TelemetryEvent], int]:
    """A span-batch line's events, as `otel.span_to_event` makes them; bad rows are counted."""
    service, version, rows = obj.get("service"), obj.get("version", ""), obj.get("spans")
    if type(service) is not str or type(version) is not str or type(rows) is not list:
        return [], 1
    events: list[rec.TelemetryEvent] = []
    bad = 0
    for row in rows:
        try:
            events.append(_batch_event(service, version, row))
        except (TypeError, ValueError, IndexError, KeyError, AttributeError):
            bad += 1
    return events, bad


def _batch_event(service: str, version: str, row: list[object]) -> rec.TelemetryEvent:
    name, start, end, status, trace_id, span_id, parent_id, attrs, exc = row
    if type(name) is not str or type(start) is not int or type(end) is not int:
        raise TypeError("span-batch row: name, start and end must be a string and integers")
    if type(status) is not int or not isinstance(attrs, dict):
        raise TypeError("span-batch row: bad status or attributes")
    ids = (_id(trace_id, 32), _id(span_id, 16), _id(parent_id, 16))
    exception = ("", "", "")
    if exc:
        if not isinstance(exc, list):
            raise TypeError("span-batch row: exception must be [type, message, stack] or 0")
        exc_type, exc_message, exc_stack = (str(x) for x in exc)
        exception = (exc_type, exc_message, exc_stack)
    return span_event(
        rec.EventSource.SPAN,
        (service, version),
        name,
        times=(start, end),
        status=_BATCH_STATUS[status],
        ids=ids,
        exception=exception,
        attrs=attrs,
    )


def _id(value: object, width: int) -> str:
    if type(value) is not int or value < 0 or value >= 1 << (4 * width):
        raise ValueError(f"span-batch row: bad id {value!r}")
    return f"{value:0{width}x}" if value else ""


def decode_event(obj: object) -> tuple[rec.TelemetryEvent | None, int]:
    if not isinstance(obj, dict):
        return None, 1
    try:
        return rec.from_json(obj, rec.TelemetryEvent), 0
    except (TypeError, ValueError, KeyError):
        return None, 1


def iter_spool(directory: Path) -> Iterator[tuple[Path, SegmentRead]]:
    """Every segment of a spool directory read from the start (for a one-off ingest)."""
    for path in segments(directory):
        yield path, read_segment(path)
