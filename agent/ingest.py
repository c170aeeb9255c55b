"""Spool to store, exactly once: each batch of spans and its read offset commit together."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent import spool
from agent.store import Store

log = logging.getLogger("selfheal.ingest")

WINDOW_RUN_KIND = "agent-window"
SOURCE_PREFIX = "spool:"
DEFAULT_WINDOW_S = 60.0
DEFAULT_BATCH = 5_000


@dataclass
class IngestStats:
    spans: int = 0
    malformed: int = 0
    batches: int = 0
    windows_closed: int = 0
    segments_removed: int = 0


class Windows:
    """Time windows of received spans, one `agent-window` run each, recovered after a crash."""

    def __init__(self, store: Store, window_s: float, on_closed: Callable[[int], None]) -> None:
        self.store = store
        self.window_s = window_s
        self._on_closed = on_closed
        self.run_id = 0
        self.ends_ns = 0
        self._recover()

    def _recover(self) -> None:
        rows = self.store.conn.execute(
            "SELECT id, started_ns FROM runs WHERE kind = ? AND status = 'running' ORDER BY id",
            (WINDOW_RUN_KIND,),
        ).fetchall()
        now = time.time_ns()
        for run_id, started in rows:
            ends = int(started) + int(self.window_s * 1e9)
            if ends > now and run_id == rows[-1][0]:
                self.run_id, self.ends_ns = int(run_id), ends  # carry on where we were killed
            else:
                self._close(int(run_id))

    def current(self) -> int:
        """The open window's run id, opening a new window when needed."""
        if self.run_id and time.time_ns() >= self.ends_ns:
            self.close_due()
        if not self.run_id:
            self.run_id = self.store.begin_run(WINDOW_RUN_KIND)
            self.ends_ns = time.time_ns() + int(self.window_s * 1e9)
        return self.run_id

    def close_due(self) -> bool:
        if not self.run_id or time.time_ns() < self.ends_ns:
            return False
        run_id, self.run_id = self.run_id, 0
        self._close(run_id)
        return True

    def _close(self, run_id: int) -> None:
        count = self.store.conn.execute(
            "SELECT count(*) FROM spans WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
        self.store.end_run(run_id, "ok", {"spans": int(count)})
        if count:
            try:
                self._on_closed(run_id)
            except Exception:  # detection trouble must not stop ingestion
                log.exception("processing window run %d failed", run_id)


class SpoolIngestor:
    """Reads every spool segment from its committed offset; one named thread, idle-cheap."""

    def __init__(
        self,
        store_path: Path,
        spool_dir: Path,
        on_window_closed: Callable[[int], None],
        *,
        window_s: float = DEFAULT_WINDOW_S,
        batch: int = DEFAULT_BATCH,
        poll_s: float = 1.0,
        active_segments: Callable[[], set[Path]] = set,
    ) -> None:
        self.store_path = store_path
        self.spool_dir = spool_dir
        self.batch = batch
        self.poll_s = max(poll_s, 1.0)  # never a busy loop: new data also wakes us directly
        self.window_s = window_s
        self._on_window_closed = on_window_closed
        self._active = active_segments
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.stats = IngestStats()
        self._thread = threading.Thread(target=self._loop, name="selfheal-ingest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        with Store.open(self.store_path) as store:
            windows = Windows(store, self.window_s, self._on_window_closed)
            while not self._stopping.is_set():
                try:
                    progressed = self.pump(store, windows)
                    if windows.close_due():
                        self.stats.windows_closed += 1
                except Exception:  # a bad file or a busy store must not end ingestion
                    log.exception("spool ingest failed; retrying")
                    progressed = False
                if not progressed:
                    self._wake.wait(self.poll_s)
                    self._wake.clear()

    def pump(self, store: Store, windows: Windows) -> bool:
        """One pass over the segments; True when anything was read."""
        offsets = store.read_offsets(SOURCE_PREFIX)
        progressed = False
        for path in spool.segments(self.spool_dir):
            if self._stopping.is_set():
                break
            key = SOURCE_PREFIX + path.name
            offset = offsets.get(key, 0)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size <= offset:
                self._maybe_remove(store, path, key, offset, size)
                continue
            read = spool.read_segment(path, offset, self.batch)
            if read.offset == offset:
                continue  # only a line still being written
            store.insert_events_at(windows.current(), read.events, key, read.offset)
            self.stats.spans += len(read.events)
            self.stats.malformed += read.malformed
            self.stats.batches += 1
            progressed = True
        return progressed

    def _maybe_remove(self, store: Store, path: Path, key: str, offset: int, size: int) -> None:
        """Delete a fully read segment once no process can still append to it."""
        if offset != size or path in self._active() or _writer_alive(path):
            return
        path.unlink(missing_ok=True)
        # File first, then the offset: a crash in between leaves a harmless stale offset row.
        with store.transaction() as conn:
            conn.execute("DELETE FROM offsets WHERE source = ?", (key,))
        self.stats.segments_removed += 1


def _writer_alive(path: Path) -> bool:
    try:
        pid = int(path.stem.split("-")[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False  # our own writer reports its active segment through `active_segments`
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
