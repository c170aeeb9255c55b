"""The SQLite store: one versioned schema with forward migrations, holding every record."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agent import records as rec
from agent.errors import StoreError, StoreVersionError

T = TypeVar("T")

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
# Times are integer nanoseconds since the epoch; JSON columns hold `records.to_json` output.
MIGRATIONS: list[str] = [
    # 1: runs, raw events, aggregated metrics and typed records.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    -- One row per telemetry ingest, test session, pipeline play or agent window.
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        started_ns INTEGER NOT NULL,
        ended_ns INTEGER,
        status TEXT NOT NULL DEFAULT 'running',
        commit_sha TEXT NOT NULL DEFAULT '',
        dirty INTEGER NOT NULL DEFAULT 0,
        env_key TEXT NOT NULL DEFAULT '',
        summary TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runs_kind ON runs (kind, env_key, id);
    -- Normalised TelemetryEvents; the hot columns are split out for queries.
    CREATE TABLE spans (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        source TEXT NOT NULL,
        service TEXT NOT NULL,
        operation TEXT NOT NULL,
        version TEXT NOT NULL,
        start_ns INTEGER NOT NULL,
        duration_ns INTEGER NOT NULL,
        status TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_span_id TEXT NOT NULL,
        code_file TEXT NOT NULL,
        code_function TEXT NOT NULL,
        exception_signature TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX spans_run ON spans (run_id);
    CREATE INDEX spans_op ON spans (service, operation, version);
    CREATE TABLE metrics (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        service TEXT NOT NULL,
        operation TEXT NOT NULL,
        version TEXT NOT NULL,
        window_start_ns INTEGER NOT NULL,
        window_end_ns INTEGER NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX metrics_op ON metrics (service, operation, version);
    CREATE INDEX metrics_run ON metrics (run_id);
    -- Anomaly, Diagnosis, Patch, ValidationResult, Deployment, EffectivenessData.
    CREATE TABLE records (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        run_id INTEGER NOT NULL DEFAULT 0,
        subject TEXT NOT NULL DEFAULT '',
        created_ns INTEGER NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX records_kind ON records (kind, subject, created_ns);
    CREATE INDEX records_run ON records (kind, run_id);
    """,
    # 2: read offsets of telemetry sources (crash safety) and the learned strategy model.
    """
    CREATE TABLE offsets (
        source TEXT PRIMARY KEY,
        offset INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL
    );
    CREATE TABLE learning (
        anomaly_kind TEXT NOT NULL,
        strategy TEXT NOT NULL,
        successes REAL NOT NULL DEFAULT 0,
        failures REAL NOT NULL DEFAULT 0,
        updated_ns INTEGER NOT NULL,
        PRIMARY KEY (anomaly_kind, strategy)
    );
    """,
    # 3: per-test history for fast baselines, and per-test line coverage maps.
    """
    -- One row per test per recorded run, derived from the run's test spans by the anomaly phase.
    CREATE TABLE test_history (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        env_key TEXT NOT NULL,
        nodeid TEXT NOT NULL,
        outcome TEXT NOT NULL,
        call_ns INTEGER NOT NULL,
        total_ns INTEGER NOT NULL,
        signature TEXT NOT NULL DEFAULT '',
        children TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (run_id, nodeid)
    );
    CREATE INDEX test_history_env ON test_history (env_key, run_id);
    CREATE INDEX test_history_node ON test_history (env_key, nodeid, run_id);
    -- A per-test coverage map (coverage.py dynamic contexts) of one commit.
    CREATE TABLE coverage_maps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL DEFAULT 0,
        commit_sha TEXT NOT NULL,
        dirty INTEGER NOT NULL DEFAULT 0,
        created_ns INTEGER NOT NULL,
        statements INTEGER NOT NULL,
        covered INTEGER NOT NULL
    );
    -- Executable lines per file (coverage.py numbits), for gaps and totals.
    CREATE TABLE coverage_files (
        map_id INTEGER NOT NULL REFERENCES coverage_maps (id),
        file TEXT NOT NULL,
        statements BLOB NOT NULL,
        PRIMARY KEY (map_id, file)
    );
    -- Lines each test ran, per file (coverage.py numbits).
    CREATE TABLE coverage_lines (
        map_id INTEGER NOT NULL REFERENCES coverage_maps (id),
        nodeid TEXT NOT NULL,
        file TEXT NOT NULL,
        lines BLOB NOT NULL,
        PRIMARY KEY (map_id, nodeid, file)
    );
    CREATE INDEX coverage_lines_file ON coverage_lines (map_id, file);
    """,
    # 4: each test's recent results in one row (JSON list, newest first): a baseline for a
    # large suite is one indexed read of a row per test instead of tests x history rows.
    """
    CREATE TABLE test_baseline (
        env_key TEXT NOT NULL,
        nodeid TEXT NOT NULL,
        updated_run INTEGER NOT NULL,
        history TEXT NOT NULL,
        PRIMARY KEY (env_key, nodeid)
    );
    """,
    # 5: production detection reads a service's spans by version, newest first (the rowid
    # ends the index, so ORDER BY id DESC LIMIT n stops early instead of sorting them all).
    """
    CREATE INDEX spans_service_version ON spans (service, version);
    """,
    # 6: no query reads test_history by (env_key, nodeid) (the planner takes the run indexes),
    # and every run's rows landed all over that index: each green run rewrote most of it.
    """
    DROP INDEX IF EXISTS test_history_node;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

_GITIGNORE = "# Created by pytest-selfheal: its store, patches and worktrees stay local.\n*\n"


# meta key: test runs up to this id have had their raw spans pruned (Store.prune_test_spans).
_PRUNED = "pruned_test_spans_through"


class StoreRecoveredWarning(UserWarning):
    """The store file was unreadable; it was moved aside and a fresh one was made."""


class Store:
    """A connection to one store file; use as a context manager or call `close()`."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn

    @classmethod
    def open(cls, path: Path, *, recover: bool = True) -> Store:
        """Open (creating and migrating as needed); a corrupt file is moved aside with a warning.

        With `recover=False` (the CLI) a corrupt file is a StoreError and is left where it is.
        """
        path = Path(path)
        _prepare_dir(path.parent)
        try:
            return cls._open_checked(path)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise StoreError(f"{path}: store is locked by another process: {exc}") from None
            if not recover:
                raise StoreError(f"{path}: not a usable selfheal store ({exc})") from None
            aside = _move_aside(path)
            warnings.warn(
                f"selfheal store {path} was unreadable ({exc}); moved to {aside.name}, "
                "starting a fresh store",
                StoreRecoveredWarning,
                stacklevel=2,
            )
            return cls._open_checked(path)

    @classmethod
    def _open_checked(cls, path: Path) -> Store:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            _configure(conn)
            migrate(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn)

    def close(self) -> None:
        self.conn.close()

    def checkpoint_early(self, pages: int = 8000) -> None:
        """Copy the write-ahead log into the database now, and let this connection's own
        commits grow it to `pages` before they do so again (SQLite's default is 1,000).

        For a writer that has time to spare now and none later (the plugin's sidecar while the
        tests run): its last commits then only append to the log; closing the store, which
        nobody waits for, moves them into the database.
        """
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self.conn.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE so two writers queue instead of failing mid-way."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot start a write: {exc}") from None
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    # Runs -------------------------------------------------------------------------------

    def begin_run(self, kind: str, commit: str = "", dirty: bool = False, env_key: str = "") -> int:
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO runs (kind, started_ns, commit_sha, dirty, env_key)"
                " VALUES (?, ?, ?, ?, ?)",
                (kind, time.time_ns(), commit, int(dirty), env_key),
            )
            return int(cur.lastrowid or 0)

    def end_run(self, run_id: int, status: str, summary: dict[str, Any] | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET ended_ns = ?, status = ?, summary = ? WHERE id = ?",
                (time.time_ns(), status, json.dumps(summary or {}, sort_keys=True), run_id),
            )

    def prune_test_spans(self, keep: int, batch: int = 10) -> int:
        """Drop the raw spans of test runs older than the `keep` newest; returns rows dropped.

        Only once `batch` more runs are due (the runs pruned so far are remembered in `meta`),
        so that a run usually pays one cheap lookup. The runs themselves, their metrics, per-test
        history and baselines, anomalies and every production run's spans stay: nothing reads
        an old test run's raw spans.
        """
        if keep <= 0:
            return 0
        row = self.conn.execute(
            "SELECT id FROM runs WHERE kind = 'test' ORDER BY id DESC LIMIT 1 OFFSET ?", (keep,)
        ).fetchone()
        if row is None:
            return 0
        mark = self.conn.execute("SELECT value FROM meta WHERE key = ?", (_PRUNED,)).fetchone()
        done = int(mark[0]) if mark else 0
        due = self.conn.execute(
            "SELECT count(*) FROM runs WHERE kind = 'test' AND id > ? AND id <= ?", (done, row[0])
        ).fetchone()[0]
        if due < batch:
            return 0
        with self.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM spans WHERE run_id IN"
                " (SELECT id FROM runs WHERE kind = 'test' AND id > ? AND id <= ?)",
                (done, row[0]),
            )
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_PRUNED, str(row[0]))
            )
        return int(cur.rowcount)

    # Events and metrics -------------------------------------------------------------------

    def insert_events(self, run_id: int, events: Iterable[rec.TelemetryEvent]) -> int:
        """Insert events in one transaction; returns how many were written."""
        rows = [_event_row(run_id, e) for e in events]
        with self.transaction() as conn:
            conn.executemany(_INSERT_EVENT, rows)
        return len(rows)

    def insert_events_at(
        self, run_id: int, events: Iterable[rec.TelemetryEvent], source: str, offset: int
    ) -> int:
        """Insert events and move `source`'s read offset in ONE transaction (exactly once)."""
        rows = [_event_row(run_id, e) for e in events]
        with self.transaction() as conn:
            conn.executemany(_INSERT_EVENT, rows)
            conn.execute(
                "INSERT OR REPLACE INTO offsets (source, offset, updated_ns) VALUES (?, ?, ?)",
                (source, offset, time.time_ns()),
            )
        return len(rows)

    def insert_event_rows(self, rows: Iterable[Sequence[Any]]) -> int:
        """Insert prepared `spans` rows (as `event_row` makes them) in one transaction."""
        rows = rows if isinstance(rows, list) else list(rows)
        with self.transaction() as conn:
            conn.executemany(_INSERT_EVENT, rows)
        return len(rows)

    def read_offsets(self, prefix: str = "") -> dict[str, int]:
        """Committed read offsets of telemetry sources whose name starts with `prefix`."""
        cur = self.conn.execute(
            "SELECT source, offset FROM offsets WHERE substr(source, 1, ?) = ?",
            (len(prefix), prefix),
        )
        return {str(source): int(offset) for source, offset in cur}

    def events(self, run_id: int) -> list[rec.TelemetryEvent]:
        cur = self.conn.execute("SELECT payload FROM spans WHERE run_id = ? ORDER BY id", (run_id,))
        return [_load(row[0], rec.TelemetryEvent) for row in cur]

    def insert_metrics(self, run_id: int, metrics: Iterable[rec.TelemetryMetrics]) -> int:
        rows = [metric_row(run_id, m, json.dumps(rec.to_json(m))) for m in metrics]
        return self.insert_metric_rows(rows)

    def insert_metric_rows(self, rows: Iterable[Sequence[Any]]) -> int:
        """Insert prepared `metrics` rows (as `metric_row` makes them) in one transaction."""
        rows = rows if isinstance(rows, list) else list(rows)
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO metrics (run_id, service, operation, version, window_start_ns,"
                " window_end_ns, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def metrics(self, run_id: int) -> list[rec.TelemetryMetrics]:
        cur = self.conn.execute(
            "SELECT payload FROM metrics WHERE run_id = ? ORDER BY id", (run_id,)
        )
        return [_load(row[0], rec.TelemetryMetrics) for row in cur]

    # Typed records ----------------------------------------------------------------------

    def put(self, record: Any, run_id: int = 0, subject: str = "") -> str:
        """Insert or replace a record that has an `id`; returns the id."""
        record_id: str = record.id
        created = int(getattr(record, "created_ns", 0) or getattr(record, "detected_ns", 0))
        created = created or getattr(record, "measured_ns", 0) or time.time_ns()
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO records (id, kind, run_id, subject, created_ns, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record_id,
                    type(record).__name__,
                    run_id,
                    subject,
                    created,
                    json.dumps(rec.to_json(record)),
                ),
            )
        return record_id

    def get(self, record_id: str, cls: type[T]) -> T | None:
        row = self.conn.execute(
            "SELECT payload FROM records WHERE id = ? AND kind = ?", (record_id, cls.__name__)
        ).fetchone()
        return None if row is None else _load(row[0], cls)

    def find(
        self,
        cls: type[T],
        *,
        subject: str | None = None,
        run_id: int | None = None,
        limit: int = 1000,
    ) -> list[T]:
        """Records of one type, newest first, optionally narrowed by subject or run."""
        sql = "SELECT payload FROM records WHERE kind = ?"
        args: list[Any] = [cls.__name__]
        if subject is not None:
            sql += " AND subject = ?"
            args.append(subject)
        if run_id is not None:
            sql += " AND run_id = ?"
            args.append(run_id)
        sql += " ORDER BY created_ns DESC, rowid DESC LIMIT ?"
        args.append(limit)
        return [_load(row[0], cls) for row in self.conn.execute(sql, args)]


_INSERT_EVENT = (
    "INSERT INTO spans (run_id, source, service, operation, version, start_ns, duration_ns,"
    " status, trace_id, span_id, parent_span_id, code_file, code_function, exception_signature,"
    " payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _event_row(run_id: int, e: rec.TelemetryEvent) -> Sequence[Any]:
    return (
        run_id,
        e.source.value,
        e.service,
        e.operation,
        e.version,
        e.start_ns,
        e.duration_ns,
        e.status.value,
        e.trace_id,
        e.span_id,
        e.parent_span_id,
        e.location.file,
        e.location.function,
        e.exception_signature,
        json.dumps(rec.to_json(e)),
    )


event_row = _event_row  # public for callers that prepare rows (Store.insert_event_rows)


def metric_row(run_id: int, m: rec.TelemetryMetrics, payload: str) -> tuple[Any, ...]:
    """A `metrics` row (Store.insert_metric_rows column order); `payload` is the record's JSON."""
    return (run_id, m.service, m.operation, m.version, m.window_start_ns, m.window_end_ns, payload)


def _load(payload: str, cls: type[T]) -> T:
    return rec.from_json(json.loads(payload), cls)


def _configure(conn: sqlite3.Connection) -> None:
    # WAL lets readers run beside the one writer; NORMAL is durable enough in WAL mode
    # (a power loss may drop the last transactions, never corrupt the file).
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")


def schema_version(conn: sqlite3.Connection) -> int:
    """The stored version: 0 for an empty file."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise sqlite3.DatabaseError("not a selfheal store (no meta table)")
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise sqlite3.DatabaseError("not a selfheal store (no schema version)")
    return int(row[0])


def migrate(conn: sqlite3.Connection, path: Path, target: int = SCHEMA_VERSION) -> int:
    """Bring the file up to `target`; each step runs in its own transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise StoreVersionError(
                f"{path}: store has schema version {current}, this pytest-selfheal knows "
                f"version {SCHEMA_VERSION} at most; upgrade pytest-selfheal or set "
                "SELFHEAL_STORE to another file"
            )
        for version in range(current + 1, target + 1):
            for statement in _statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(version),),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(current, target)


def _statements(script: str) -> Iterator[str]:
    # executescript() would COMMIT the caller's transaction first; running the statements one
    # by one keeps a migration and its version bump atomic.
    pending = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise StoreError(f"incomplete SQL in a migration: {pending.strip()[:60]}")


def _prepare_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{directory}: cannot create the store directory: {exc}") from None
    if directory.name == ".selfheal":
        ignore = directory / ".gitignore"
        if not ignore.exists():
            ignore.write_text(_GITIGNORE, encoding="utf-8")


def _move_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{path}{suffix}")
        if part.exists():
            part.replace(Path(f"{aside}{suffix}"))
    return aside


def open_store(path: Path, *, recover: bool = True) -> Store:
    """Open a store, turning raw sqlite3 errors into StoreError naming the file."""
    try:
        return Store.open(path, recover=recover)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {exc}") from None
