"""Finding telemetry files and stream-reading them in bounded batches from a byte cursor."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import spool
from agent.errors import TelemetryError
from agent.phases.telemetry.logs import log_event, looks_like_log
from agent.phases.telemetry.otlp_json import OtlpParser
from agent.phases.telemetry.raw import RawEvent

# Files a directory scan picks up; a file named explicitly is read whatever its name.
SUFFIXES = frozenset({".json", ".jsonl", ".ndjson", ".log", ".otlp"})
SNIFF_BYTES = 64 * 1024
MAX_LINE_BYTES = 64 * 1024 * 1024  # a longer line is skipped as malformed, never loaded
_SKIP_DIRS = frozenset({".git", "__pycache__", "node_modules", ".venv", "venv"})


@dataclass(frozen=True)
class SourceFile:
    path: str
    size: int
    device: int
    inode: int


@dataclass(frozen=True)
class Cursor:
    """Which source and byte offset the next batch starts from."""

    index: int = 0
    offset: int = 0


@dataclass
class SourceCounts:
    """Per-source tallies, updated while reading (owned by one ingest)."""

    lines: int = 0
    events: int = 0
    malformed: int = 0
    ignored: int = 0  # valid lines of another signal (OTLP logs or metrics)


@dataclass
class ReadStats:
    """What one ingest keeps while reading: tallies per source, and the OTLP parser's state."""

    by_source: dict[str, SourceCounts] = field(default_factory=dict)
    otlp: OtlpParser = field(default_factory=OtlpParser)

    def of(self, path: str) -> SourceCounts:
        counts = self.by_source.get(path)
        if counts is None:
            counts = self.by_source[path] = SourceCounts()
        return counts


def discover(paths: tuple[Path, ...]) -> tuple[SourceFile, ...]:
    """Expand directories (sorted, recursive), check each file is text; errors name the path."""
    found: list[SourceFile] = []
    seen: set[tuple[int, int]] = set()
    for path in paths:
        if path.is_dir():
            files = sorted(_walk(path))
        elif path.is_file():
            files = [path]
        elif path.exists():
            raise TelemetryError(f"{path}: not a regular file or directory")
        else:
            raise TelemetryError(f"{path}: no such file or directory")
        for file in files:
            source = _source(file)
            if (source.device, source.inode) not in seen:
                seen.add((source.device, source.inode))
                found.append(source)
    return tuple(found)


def _walk(directory: Path) -> list[Path]:
    out: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        out.extend(Path(root) / f for f in files if Path(f).suffix in SUFFIXES)
    return out


def _source(path: Path) -> SourceFile:
    try:
        st = path.stat()
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise TelemetryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    problem = binary_problem(head)
    if problem:
        raise TelemetryError(
            f"{path}: not a telemetry file ({problem}); expected OTLP JSON lines, "
            "JSON-lines logs or spool segments"
        )
    return SourceFile(str(path), st.st_size, st.st_dev, st.st_ino)


def binary_problem(head: bytes) -> str:
    """Why the first bytes of a file are not text, or '' when they are."""
    nul = head.find(b"\0")
    if nul >= 0:
        return f"binary data: NUL byte at offset {nul}"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sniff window is not a problem.
        if exc.start < len(head) - 4 or len(head) < SNIFF_BYTES:
            return f"binary data: invalid UTF-8 at offset {exc.start}"
    return ""


def check_unchanged(source: SourceFile, cursor: Cursor) -> None:
    """Between batches a file may grow, but not be replaced or truncated under the cursor."""
    try:
        st = os.stat(source.path)
    except OSError as exc:
        raise TelemetryError(f"{source.path}: vanished while reading: {exc.strerror}") from None
    if (st.st_dev, st.st_ino) != (source.device, source.inode) or st.st_size < cursor.offset:
        raise TelemetryError(f"{source.path}: replaced or truncated while reading")


def read_batch(
    sources: tuple[SourceFile, ...],
    cursor: Cursor,
    limit: int,
    stats: ReadStats,
    out: list[RawEvent],
) -> Cursor:
    """Parse whole lines from `cursor` until `limit` events are read; returns the next cursor."""
    index, offset = cursor.index, cursor.offset
    while index < len(sources) and len(out) < limit:
        source = sources[index]
        try:
            offset, finished = _read_file(source, offset, limit, stats, out)
        except OSError as exc:
            raise TelemetryError(f"{source.path}: cannot read: {exc.strerror or exc}") from None
        if finished:
            index, offset = index + 1, 0
    return Cursor(index, offset)


def _read_file(
    source: SourceFile,
    offset: int,
    limit: int,
    stats: ReadStats,
    out: list[RawEvent],
) -> tuple[int, bool]:
    lines = LineParser(stats.otlp, stats.of(source.path), Path(source.path).stem)
    counts = lines.counts
    with open(source.path, "rb") as handle:
        handle.seek(offset)
        while len(out) < limit:
            line = handle.readline(MAX_LINE_BYTES + 1)
            if not line:
                return offset, True
            offset += len(line)
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                offset = _skip_rest(handle, offset)
                counts.malformed += 1
                continue
            before = len(out)
            lines.parse(line, out)
            counts.events += len(out) - before
    return offset, False


def _skip_rest(handle: Any, offset: int) -> int:
    while True:
        chunk = handle.readline(MAX_LINE_BYTES)
        offset += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return offset


@dataclass
class LineParser:
    """Parses the lines of one source: any supported format, each line on its own."""

    otlp: OtlpParser
    counts: SourceCounts
    service: str  # for log lines that do not name their service: the file's stem

    def parse(self, line: bytes, out: list[RawEvent]) -> None:
        """One line; what cannot be read is counted, never raised."""
        if not line.strip():
            return
        counts = self.counts
        counts.lines += 1
        try:
            obj = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError both
            counts.malformed += 1
            return
        if not isinstance(obj, dict):
            counts.malformed += 1
            return
        try:
            self._dispatch(obj, line, out)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            counts.malformed += 1

    def _dispatch(self, obj: dict[str, Any], line: bytes, out: list[RawEvent]) -> None:
        counts = self.counts
        if "resourceSpans" in obj:
            counts.malformed += self.otlp.parse(obj, out, line)
        elif obj.get("type") == "TelemetryEvent":
            event, bad = spool.decode_event(obj)
            counts.malformed += bad
            if event is not None:
                out.append(RawEvent.from_record(event))
        elif obj.get("type") == spool.BATCH_TYPE:
            events, bad = spool.decode_batch(obj)  # bad spans of the batch, not lines
            counts.malformed += bad
            out.extend(RawEvent.from_record(e) for e in events)
        elif spool.is_header(obj):
            return
        elif "resourceLogs" in obj or "resourceMetrics" in obj or "resourceProfiles" in obj:
            counts.ignored += 1
        elif looks_like_log(obj):
            out.append(log_event(obj, self.service))
        else:
            counts.malformed += 1
