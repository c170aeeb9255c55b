"""Spool: append-only segments, size rotation, torn last lines, resumable reads by offset."""

from __future__ import annotations

import json
from pathlib import Path

from agent import records as rec
from agent.spool import (
    HEADER_TYPE,
    SPOOL_VERSION,
    SpoolWriter,
    is_segment,
    read_segment,
    segments,
    spool_dir,
)


def event(i: int) -> rec.TelemetryEvent:
    return rec.TelemetryEvent(
        rec.EventSource.SPAN,
        "svc",
        f"op{i % 3}",
        1_700_000_000_000_000_000 + i,
        1000 + i,
        rec.SpanStatus.ERROR if i % 5 == 0 else rec.SpanStatus.OK,
        trace_id=f"{i:032x}",
        span_id=f"{i:016x}",
        attributes={"i": i, "name": f"n{i}"},
    )


def test_written_events_read_back_in_order(tmp_path: Path) -> None:
    directory = spool_dir(tmp_path / ".selfheal")
    with SpoolWriter(directory) as writer:
        writer.write(event(i) for i in range(20))
        writer.flush()
        path = writer.path
    assert path is not None and segments(directory) == [path] and is_segment(path)
    header = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert header["type"] == HEADER_TYPE and header["version"] == SPOOL_VERSION
    read = read_segment(path)
    assert list(read.events) == [event(i) for i in range(20)]
    assert read.offset == path.stat().st_size and read.malformed == 0


def test_rotation_by_size_keeps_every_event_once(tmp_path: Path) -> None:
    with SpoolWriter(tmp_path, max_bytes=4096) as writer:
        writer.write(event(i) for i in range(100))
    files = segments(tmp_path)
    assert len(files) > 3
    assert all(p.stat().st_size <= 4096 for p in files)
    events = [e for p in files for e in read_segment(p).events]
    assert events == [event(i) for i in range(100)]


def test_reader_resumes_from_its_offset(tmp_path: Path) -> None:
    with SpoolWriter(tmp_path) as writer:
        writer.write(event(i) for i in range(5))
        path = writer.path
        assert path is not None
        first = read_segment(path)
        writer.write(event(i) for i in range(5, 8))
        second = read_segment(path, first.offset)
    assert [e.span_id for e in second.events] == [event(i).span_id for i in range(5, 8)]
    assert read_segment(path, second.offset).events == ()


def test_torn_last_line_is_left_for_later_and_bad_lines_are_counted(tmp_path: Path) -> None:
    with SpoolWriter(tmp_path) as writer:
        writer.write([event(1), event(2)])
        path = writer.path
    assert path is not None
    line = json.dumps(rec.to_json(event(3))) + "\n"
    with path.open("a", encoding="utf-8") as handle:
        handle.write("{not json}\n")
        handle.write(line[:40])  # a crash mid-write
    read = read_segment(path)
    assert [e.span_id for e in read.events] == [event(1).span_id, event(2).span_id]
    assert read.malformed == 1 and read.pending_bytes == 40
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line[40:])  # had the writer lived, the line completes
    rest = read_segment(path, read.offset)
    assert list(rest.events) == [event(3)] and rest.pending_bytes == 0


def test_max_events_bounds_one_read(tmp_path: Path) -> None:
    with SpoolWriter(tmp_path) as writer:
        writer.write(event(i) for i in range(10))
        path = writer.path
    assert path is not None
    part = read_segment(path, max_events=4)
    assert len(part.events) == 4
    rest = read_segment(path, part.offset)
    assert len(rest.events) == 6


def test_two_writers_never_share_a_segment(tmp_path: Path) -> None:
    with SpoolWriter(tmp_path) as one, SpoolWriter(tmp_path) as two:
        one.write([event(1)])
        two.write([event(2)])
        assert one.path != two.path
    assert len(segments(tmp_path)) == 2
