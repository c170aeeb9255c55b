"""Spool ingest: offsets and spans commit together, windows close and recover."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent import spool
from agent.ingest import SOURCE_PREFIX, WINDOW_RUN_KIND, SpoolIngestor, Windows
from agent.records import EventSource, SpanStatus, TelemetryEvent
from agent.store import Store


def events(start: int, count: int) -> list[TelemetryEvent]:
    return [
        TelemetryEvent(
            source=EventSource.SPAN,
            service="shop",
            operation=f"GET /item/{i % 7}",
            start_ns=1_700_000_000_000_000_000 + i,
            duration_ns=1_000 + i,
            status=SpanStatus.OK,
            trace_id=f"{i:032x}",
            span_id=f"{i:016x}",
        )
        for i in range(start, start + count)
    ]


def span_ids(store: Store) -> list[str]:
    return [r[0] for r in store.conn.execute("SELECT span_id FROM spans")]


def drain(ing: SpoolIngestor, store: Store, windows: Windows) -> int:
    passes = 0
    while ing.pump(store, windows):
        passes += 1
    return passes


def make(tmp_path: Path, **kw: object) -> tuple[SpoolIngestor, Store, Windows, list[int]]:
    closed: list[int] = []
    ing = SpoolIngestor(tmp_path / "db", tmp_path / "spool", closed.append, **kw)  # type: ignore[arg-type]
    store = Store.open(tmp_path / "db")
    return ing, store, Windows(store, ing.window_s, closed.append), closed


def test_every_span_once_in_batches_across_segments(tmp_path: Path) -> None:
    with spool.SpoolWriter(tmp_path / "spool", max_bytes=200_000) as writer:
        writer.write(events(0, 3_000))
    assert len(spool.segments(tmp_path / "spool")) > 1
    ing, store, windows, _ = make(tmp_path, batch=500)
    with store:
        drain(ing, store, windows)
        assert ing.stats.batches >= 6
        assert not ing.pump(store, windows)  # nothing left, nothing read twice
        ids = span_ids(store)
        assert len(ids) == len(set(ids)) == 3_000
        offsets = store.read_offsets(SOURCE_PREFIX)
        for path in spool.segments(tmp_path / "spool"):
            assert offsets[SOURCE_PREFIX + path.name] == path.stat().st_size


def test_restart_resumes_from_the_committed_offset(tmp_path: Path) -> None:
    with spool.SpoolWriter(tmp_path / "spool") as writer:
        writer.write(events(0, 1_000))
    ing, store, windows, _ = make(tmp_path, batch=300)
    with store:
        assert ing.pump(store, windows)  # one batch of 300, then "crash"
    ing2, store2, windows2, _ = make(tmp_path, batch=300)
    with store2:
        assert windows2.run_id == windows.run_id  # the open window carries on
        drain(ing2, store2, windows2)
        ids = span_ids(store2)
        assert len(ids) == len(set(ids)) == 1_000


def test_torn_and_malformed_lines(tmp_path: Path) -> None:
    with spool.SpoolWriter(tmp_path / "spool") as writer:
        writer.write(events(0, 10))
        segment = writer.path
    assert segment is not None
    line = json.dumps({"type": "TelemetryEvent", "service": 1}) + "\n"
    with segment.open("ab") as handle:
        handle.write(line.encode())  # complete but not an event: counted and skipped
        handle.write(b'{"type": "TelemetryEv')  # torn: a writer is mid-line (or crashed)
    ing, store, windows, _ = make(tmp_path)
    with store:
        drain(ing, store, windows)
        assert len(span_ids(store)) == 10
        assert ing.stats.malformed == 1
        before = store.read_offsets(SOURCE_PREFIX)[SOURCE_PREFIX + segment.name]
        assert before < segment.stat().st_size
        rest = json.dumps(_event_json(99))[len('{"type": "TelemetryEv') :] + "\n"
        with segment.open("ab") as handle:
            handle.write(rest.encode())
        drain(ing, store, windows)
        assert sorted(span_ids(store))[-1] == f"{99:016x}"
        assert len(span_ids(store)) == 11


def _event_json(i: int) -> dict[str, object]:
    from agent.records import to_json

    return to_json(events(i, 1)[0])


def test_windows_close_and_report(tmp_path: Path) -> None:
    with spool.SpoolWriter(tmp_path / "spool") as writer:
        writer.write(events(0, 5))
    ing, store, windows, closed = make(tmp_path, window_s=0.2)
    with store:
        drain(ing, store, windows)
        run_id = windows.run_id
        time.sleep(0.25)
        assert windows.close_due()
        assert closed == [run_id]
        row = store.conn.execute("SELECT status, summary FROM runs WHERE id = ?", (run_id,))
        status, summary = row.fetchone()
        assert status == "ok" and json.loads(summary) == {"spans": 5}


def test_windows_left_open_by_a_crash_are_closed_at_start(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db") as store:
        old = store.begin_run(WINDOW_RUN_KIND)
        store.insert_events(old, events(0, 3))
        store.conn.execute("UPDATE runs SET started_ns = started_ns - 10000000000000")
        closed: list[int] = []
        windows = Windows(store, 60.0, closed.append)
        assert closed == [old] and windows.run_id == 0


def test_fully_read_segments_of_dead_writers_are_removed(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    dead = directory / "0000000000000000001-999999-0001.jsonl"  # no such pid
    lines = [json.dumps({"type": "SpoolHeader", "version": 1})]
    lines += [json.dumps(_event_json(i)) for i in range(3)]
    dead.write_text("\n".join(lines) + "\n")
    ing, store, windows, _ = make(tmp_path)
    with store:
        drain(ing, store, windows)
        ing.pump(store, windows)  # the pass after the last read removes it
        assert not dead.exists()
        assert store.read_offsets(SOURCE_PREFIX) == {}
        assert len(span_ids(store)) == 3


def test_the_thread_ingests_and_stops(tmp_path: Path) -> None:
    closed: list[int] = []
    ing = SpoolIngestor(tmp_path / "db", tmp_path / "spool", closed.append)
    ing.start()
    try:
        with spool.SpoolWriter(tmp_path / "spool") as writer:
            writer.write(events(0, 50))
        ing.wake()
        deadline = time.monotonic() + 10
        while ing.stats.spans < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        ing.stop()
    assert ing.stats.spans == 50
