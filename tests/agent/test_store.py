"""Store: migrations from version 1, recovery from a corrupt file, newer files, two writers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent import records as rec
from agent.errors import StoreError, StoreVersionError
from agent.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Store,
    StoreRecoveredWarning,
    migrate,
    open_store,
    schema_version,
)


def make_v1(path: Path) -> None:
    """A store file exactly as version 1 of the schema left it, with one run in it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn, path, target=1) == 1
        conn.execute("INSERT INTO runs (kind, started_ns) VALUES ('ingest', 5)")
    finally:
        conn.close()


def test_version_1_file_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "selfheal.db"
    make_v1(path)
    with Store.open(path) as store:
        assert schema_version(store.conn) == SCHEMA_VERSION == len(MIGRATIONS)
        assert store.conn.execute("SELECT kind, started_ns FROM runs").fetchall() == [("ingest", 5)]
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert {"offsets", "learning"} <= tables  # added by migration 2
        run = store.begin_run("test")
        assert run == 2


def test_fresh_store_uses_wal_and_ignores_itself_in_git(tmp_path: Path) -> None:
    with Store.open(tmp_path / ".selfheal" / "selfheal.db") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert (tmp_path / ".selfheal" / ".gitignore").read_text().strip().endswith("*")


def test_corrupt_file_is_moved_aside_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "selfheal.db"
    garbage = b"this is not sqlite\x00" * 100
    path.write_bytes(garbage)
    with pytest.warns(StoreRecoveredWarning, match="moved to selfheal.db.corrupt-"):
        store = Store.open(path)
    with store:
        assert store.begin_run("ingest") == 1
    aside = list(tmp_path.glob("selfheal.db.corrupt-*"))
    assert [p.read_bytes() for p in aside] == [garbage]


def test_strict_open_refuses_a_corrupt_file_and_leaves_it(tmp_path: Path) -> None:
    path = tmp_path / "selfheal.db"
    path.write_bytes(b"not a database at all" * 50)
    with pytest.raises(StoreError) as info:
        open_store(path, recover=False)
    message = str(info.value)
    assert str(path) in message and "not a usable selfheal store" in message
    assert "\n" not in message
    assert path.read_bytes().startswith(b"not a database")
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_sqlite_file_of_another_program_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="no meta table"):
        open_store(path, recover=False)


def test_newer_version_is_an_error_naming_file_and_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "selfheal.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 7,))
    conn.commit()
    conn.close()
    for recover in (True, False):
        with pytest.raises(StoreVersionError) as info:
            Store.open(path, recover=recover)
        message = str(info.value)
        assert str(path) in message
        assert f"version {SCHEMA_VERSION + 7}" in message
        assert f"version {SCHEMA_VERSION} at most" in message
    assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from agent import records as rec
    from agent.store import Store

    path, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    with Store.open(path) as store:
        run = store.begin_run("ingest", env_key=name)
        for i in range(count):
            event = rec.TelemetryEvent(rec.EventSource.SPAN, name, f"op{i}", i, i)
            store.insert_events(run, [event])
        store.end_run(run, "ok")
    """
)


def test_two_processes_writing_at_once_lose_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "selfheal.db"
    Store.open(path).close()  # created once, so neither writer races on the schema
    count = 300
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(count)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with Store.open(path) as store:
        rows = store.conn.execute(
            "SELECT service, count(*), count(DISTINCT operation) FROM spans GROUP BY service"
        ).fetchall()
        assert sorted(rows) == [("alpha", count, count), ("beta", count, count)]
        statuses = store.conn.execute("SELECT status FROM runs").fetchall()
        assert statuses == [("ok",), ("ok",)]


def test_events_and_metrics_round_trip_through_the_store(tmp_path: Path) -> None:
    event = rec.TelemetryEvent(
        rec.EventSource.SPAN,
        "svc",
        "GET /x",
        10,
        20,
        rec.SpanStatus.ERROR,
        attributes={"http.route": "/x", "retries": 2, "ok": False, "ratio": 0.5},
    )
    metric = rec.TelemetryMetrics("svc", "GET /x", "1", 1, 1, 20.0, 20, 20, 20, 20, 20, 10, 30)
    with Store.open(tmp_path / "s.db") as store:
        run = store.begin_run("ingest")
        store.insert_events(run, [event])
        store.insert_metrics(run, [metric])
        assert store.events(run) == [event]
        assert store.metrics(run) == [metric]


def test_version_5_file_drops_the_unread_test_history_index_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "selfheal.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn, path, target=5) == 5
        conn.execute("INSERT INTO runs (kind, started_ns) VALUES ('test', 5)")
        conn.execute(
            "INSERT INTO test_history (run_id, env_key, nodeid, outcome, call_ns, total_ns)"
            " VALUES (1, 'e', 't.py::a', 'passed', 7, 9)"
        )
    finally:
        conn.close()
    with Store.open(path) as store:
        indexes = {
            r[0]
            for r in store.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'test_history'"
            )
        }
        assert "test_history_node" not in indexes and "test_history_env" in indexes
        rows = store.conn.execute("SELECT nodeid, call_ns FROM test_history").fetchall()
        assert rows == [("t.py::a", 7)]


def test_old_test_runs_lose_their_raw_spans_in_batches(tmp_path: Path) -> None:
    event = rec.TelemetryEvent(rec.EventSource.TEST, "pytest", "t.py::a", 1, 2)
    with Store.open(tmp_path / "s.db") as store:
        production = store.begin_run("otlp")
        store.insert_events(production, [event])
        tests = []
        for _ in range(14):
            tests.append(store.begin_run("test"))
            store.insert_events(tests[-1], [event, event])
        assert store.prune_test_spans(keep=5, batch=10) == 0  # only 9 runs due: not yet
        tests.append(store.begin_run("test"))
        store.insert_events(tests[-1], [event, event])
        assert store.prune_test_spans(keep=5, batch=10) == 20  # the 10 oldest test runs
        kept = {r for (r,) in store.conn.execute("SELECT DISTINCT run_id FROM spans")}
        assert kept == {production, *tests[-5:]}
        assert store.conn.execute("SELECT count(*) FROM runs").fetchone() == (16,)
        assert store.prune_test_spans(keep=0) == 0 and store.prune_test_spans(keep=5) == 0
        for _ in range(10):  # ten more runs: the next ten old runs are due
            tests.append(store.begin_run("test"))
            store.insert_events(tests[-1], [event, event])
        assert store.prune_test_spans(keep=5) == 20
        kept = {r for (r,) in store.conn.execute("SELECT DISTINCT run_id FROM spans")}
        assert kept == {production, *tests[-5:]}


def test_checkpoint_early_lets_the_log_grow_until_the_store_closes(tmp_path: Path) -> None:
    """The sidecar's last commits must not wait for SQLite copying its log back."""
    events = [
        rec.TelemetryEvent(rec.EventSource.SPAN, "svc", f"operation-{i}" * 8, i, i + 1)
        for i in range(1000)
    ]

    def log_pages(limit: int) -> int:
        path = tmp_path / f"{limit}.db"
        with Store.open(path) as store:
            run = store.begin_run("test")
            store.checkpoint_early(pages=limit)
            for _ in range(6):
                store.insert_events(run, events)
            (page,) = store.conn.execute("PRAGMA page_size").fetchone()
            return Path(f"{path}-wal").stat().st_size // int(page)

    # After `limit` pages SQLite copies the log back and starts it again from its beginning.
    restarted, grown = log_pages(100), log_pages(100_000)
    assert grown > 3 * restarted, (restarted, grown)
