"""Read what later test runs and telemetry say about a subject, one sample per run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.phases.learning.applied import is_ancestor
from agent.records import Anomaly, TelemetryMetrics, from_json
from agent.store import Store

FAILED = ("failed", "error")
MAX_AFTER_RUNS = 50


@dataclass(frozen=True)
class Sample:
    """The subject and its suite in one run (a test run) or one telemetry window."""

    run_id: int
    started_ns: int
    commit: str
    subject_seen: bool
    subject_failed: bool
    subject_ns: float | None  # call duration of the test, or p50 of the operation
    failing: frozenset[str] = frozenset()  # failing tests of the run (empty for telemetry)
    tests: int = 0
    coverage: float | None = None  # percent of statements, when the run had a coverage map
    error_rate: float | None = None  # for telemetry subjects


def _run_row(store: Store, run_id: int) -> tuple[int, str] | None:
    row = store.conn.execute(
        "SELECT started_ns, commit_sha FROM runs WHERE id = ?", (run_id,)
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def _coverage(store: Store, run_id: int, commit: str) -> float | None:
    row = store.conn.execute(
        "SELECT statements, covered FROM coverage_maps WHERE run_id = ? OR (run_id = 0 AND"
        " commit_sha = ? AND dirty = 0) ORDER BY run_id DESC, id DESC LIMIT 1",
        (run_id, commit),
    ).fetchone()
    return 100.0 * row[1] / row[0] if row and row[0] else None


def run_sample(store: Store, run_id: int, tests: Sequence[str]) -> Sample | None:
    """The subject's tests and the suite's failures in one recorded test run."""
    run = _run_row(store, run_id)
    rows = store.conn.execute(
        "SELECT nodeid, outcome, call_ns FROM test_history WHERE run_id = ?", (run_id,)
    ).fetchall()
    if run is None or not rows:
        return None
    failing = frozenset(str(n) for n, o, _ in rows if o in FAILED)
    wanted = set(tests)
    mine = [(str(o), int(c)) for n, o, c in rows if n in wanted]
    # Negative: measured under coverage tracing, which says nothing about the code's speed.
    timed = bool(mine) and all(c >= 0 for _, c in mine)
    return Sample(
        run_id=run_id,
        started_ns=run[0],
        commit=run[1],
        subject_seen=bool(mine),
        subject_failed=any(o in FAILED for o, _ in mine),
        subject_ns=float(sum(c for _, c in mine)) if timed else None,
        failing=failing,
        tests=len(rows),
        coverage=_coverage(store, run_id, run[1]),
    )


def runs_before(
    store: Store, tests: Sequence[str], before_run: int, limit: int = 5
) -> list[Sample]:
    """Up to `limit` recorded runs before `before_run` in which the tests ran, newest first:
    the baseline sample (one run alone is too noisy to judge timing against)."""
    marks = ",".join("?" * len(tests))
    rows = store.conn.execute(
        f"SELECT DISTINCT run_id FROM test_history WHERE nodeid IN ({marks}) AND run_id < ?"
        " ORDER BY run_id DESC LIMIT ?",
        (*tests, before_run, limit),
    ).fetchall()
    samples = [run_sample(store, int(r[0]), tests) for r in rows]
    return [s for s in samples if s is not None and not s.subject_failed]


def runs_after(
    store: Store, repo: Path, tests: Sequence[str], after_run: int, applied: str
) -> list[Sample]:
    """Later test runs whose commit contains the applied fix, oldest first (dirty runs too:
    a developer's uncommitted work on top of the fix still runs the fix)."""
    rows = store.conn.execute(
        "SELECT DISTINCT h.run_id, r.commit_sha FROM test_history h JOIN runs r ON r.id = h.run_id"
        " WHERE h.run_id > ? ORDER BY h.run_id LIMIT ?",
        (after_run, MAX_AFTER_RUNS * 4),
    ).fetchall()
    ancestry: dict[str, bool] = {}
    samples = []
    for run_id, commit in rows:
        if commit not in ancestry:
            ancestry[commit] = is_ancestor(repo, applied, str(commit))
        if ancestry[commit]:
            sample = run_sample(store, int(run_id), tests)
            if sample is not None:
                samples.append(sample)
    return samples[:MAX_AFTER_RUNS]


def _split(subject: str) -> tuple[str, str]:
    service, _, operation = subject.partition("/")
    return (service, operation) if operation else ("", subject)


def telemetry_samples(
    store: Store, subject: str, since_ns: int, until_ns: int | None = None
) -> list[Sample]:
    """Telemetry windows of a `service/operation` subject within a time range."""
    service, operation = _split(subject)
    sql = "SELECT m.run_id, m.payload FROM metrics m WHERE m.operation = ? AND m.window_end_ns >= ?"
    args: list[object] = [operation, since_ns]
    if service:
        sql += " AND m.service = ?"
        args.append(service)
    if until_ns is not None:
        sql += " AND m.window_start_ns < ?"
        args.append(until_ns)
    out = []
    for run_id, payload in store.conn.execute(sql + " ORDER BY m.window_start_ns", args):
        m = from_json(json.loads(payload), TelemetryMetrics)
        out.append(
            Sample(
                run_id=int(run_id),
                started_ns=m.window_start_ns,
                commit=m.version,
                subject_seen=m.count > 0,
                subject_failed=m.error_rate > 0.5,
                subject_ns=m.p50_ns,
                error_rate=m.error_rate,
            )
        )
    return out


def subject_tests(store: Store, anomaly: Anomaly) -> tuple[str, ...]:
    """The recorded tests that show the anomaly: its subject when that is a test node id,
    else its tests (an error anomaly's subject is an exception signature); () for telemetry."""
    for candidates in ((anomaly.subject,), anomaly.tests):
        known = tuple(
            t
            for t in candidates
            if store.conn.execute(
                "SELECT 1 FROM test_history WHERE nodeid = ? LIMIT 1", (t,)
            ).fetchone()
        )
        if known:
            return known
    return ()
