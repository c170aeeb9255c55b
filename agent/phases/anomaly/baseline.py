"""Store queries: the current run's tests from its spans, and each test's comparable history."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.phases.anomaly import model as m
from agent.store import Store

# Runs looked at when assembling per-test history: more than `history` so that tests skipped
# by `-k` or `--lf` in some runs still get a full sample.
RUN_WINDOW_FACTOR = 2

T = TypeVar("T")
# One span as observations are made of it: the `spans` columns load_current reads (source,
# span id, parent span id, operation, start, duration, exception signature, code file), then
# what `detail` opens for test spans only (the stored payload, or the event itself).
SpanRow = tuple[str, str, str, str, int, int, str, str, T]
# What a test's observation needs beyond those columns: attributes, code line, exception message.
Detail = tuple[Mapping[str, Any], Any, Any]
_TestSpan = tuple[Mapping[str, Any], int, int, str, str, Any, Any]


def load_current(store: Store, run_id: int) -> tuple[m.TestObservation, ...]:
    """The tests of one stored run, read back from its spans (for callers with a run id only)."""
    rows = store.conn.execute(
        "SELECT source, span_id, parent_span_id, operation, start_ns, duration_ns,"
        " exception_signature, code_file, payload FROM spans WHERE run_id = ? ORDER BY id",
        (run_id,),
    )
    return observations(rows, _payload_detail)


def current_from_events(events: Iterable[m.StoredEvent]) -> tuple[m.TestObservation, ...]:
    """The tests of a run from its stored events, as the telemetry phase handed them on."""
    spans = (
        (
            e.source.value,
            e.span_id,
            e.parent_span_id,
            e.operation,
            e.start_ns,
            e.duration_ns,
            e.exception_signature,
            e.location.file,
            e,
        )
        for e in events
    )
    return observations(spans, _event_detail)


def observations(
    spans: Iterable[SpanRow[T]], detail: Callable[[T], Detail]
) -> tuple[m.TestObservation, ...]:
    """The tests of a run, with the operations their child spans ran (by count).

    `spans` in stored order; `detail` is asked only for test spans (decoding a payload is
    most of the cost of reading a run back, and most spans are not tests).
    """
    tests: dict[str, _TestSpan] = {}
    parents: dict[str, str] = {}
    ops: dict[str, str] = {}
    for source, span_id, parent, op, start, dur, sig, file, more in spans:
        parents[span_id] = parent
        ops[span_id] = op
        if source == "test":
            attrs, line, message = detail(more)
            if attrs.get(m.ATTR_NODEID):  # the session span has none
                tests[span_id] = (attrs, start, dur, sig, file, line, message)
    children = _children_per_test(parents, ops, tests.keys())
    return tuple(_observation(row, children.get(span_id)) for span_id, row in tests.items())


def _payload_detail(payload: str) -> Detail:
    data = json.loads(payload)
    line = data.get("location", {}).get("line", 0)
    return data.get("attributes", {}), line, data.get("exception_message", "")


def _event_detail(event: m.StoredEvent) -> Detail:
    return event.attributes, event.location.line, event.exception_message


def _children_per_test(
    parents: Mapping[str, str], ops: Mapping[str, str], tests: Set[str]
) -> dict[str, Counter[str]]:
    """Walk each non-test span up to its test span; count operations per test."""
    result: dict[str, Counter[str]] = {}
    for span_id, op in ops.items():
        if span_id in tests:
            continue
        node, hops = parents.get(span_id, ""), 0
        while node and node not in tests and hops < 64:
            node, hops = parents.get(node, ""), hops + 1
        if node in tests:
            result.setdefault(node, Counter())[op] += 1
    return result


def _observation(row: _TestSpan, children: Counter[str] | None) -> m.TestObservation:
    attrs, start, dur, sig, file, line, message = row
    get = attrs.get
    ratio, floor = get(m.ATTR_RATIO), get(m.ATTR_FLOOR_MS)
    return m.TestObservation(  # positional, in field order: one of these per test
        str(get(m.ATTR_NODEID, "")),
        str(get(m.ATTR_OUTCOME, "")),
        int(get(m.ATTR_CALL_NS, dur)),
        int(dur),
        sig,
        str(message)[:500],
        file,
        int(line or 0),
        str(get(m.ATTR_WORKER, "")),
        int(start),
        dict(children) if children else {},
        float(ratio) if isinstance(ratio, (int, float)) else None,
        float(floor) if isinstance(floor, (int, float)) else None,
    )


def baseline_runs(store: Store, env_key: str, before_run: int, limit: int) -> list[int]:
    """Earlier recorded test runs of this environment, newest first."""
    rows = store.conn.execute(_EARLIER_RUNS, (env_key, before_run, limit)).fetchall()
    return [int(r[0]) for r in rows]


# DISTINCT run_id would walk the index entry of every test of every run in the window; this
# seeks from run to run instead (one index lookup per run, whatever the size of the suite).
_EARLIER_RUNS = """
WITH RECURSIVE earlier(run_id) AS (
    SELECT max(run_id) FROM test_history WHERE env_key = ?1 AND run_id < ?2
    UNION ALL
    SELECT (SELECT max(run_id) FROM test_history WHERE env_key = ?1 AND run_id < earlier.run_id)
    FROM earlier WHERE earlier.run_id IS NOT NULL
)
SELECT run_id FROM earlier WHERE run_id IS NOT NULL LIMIT ?3
"""


@dataclass(frozen=True)
class ReadAhead:
    """An environment's rolling baseline, read and decoded while the run it serves was still
    being recorded (the plugin's sidecar has a core to spare then); `load_history` takes it
    when the store has not changed since, as `PRAGMA data_version` tells on that connection."""

    env_key: str
    data_version: int
    texts: dict[str, str]
    entries: dict[str, tuple[m.PastResult, ...]]


def read_ahead(store: Store, env_key: str) -> ReadAhead:
    return ReadAhead(env_key, _data_version(store), *_rolling_rows(store, env_key))


def _rolling_rows(
    store: Store, env_key: str
) -> tuple[dict[str, str], dict[str, tuple[m.PastResult, ...]]]:
    """Each test's stored row, as text and decoded."""
    texts: dict[str, str] = {}
    entries: dict[str, tuple[m.PastResult, ...]] = {}
    rows = store.conn.execute(
        "SELECT nodeid, history FROM test_baseline WHERE env_key = ?", (env_key,)
    )
    for nodeid, text in rows:
        texts[nodeid] = text
        entries[nodeid] = tuple(m.PastResult(*e) for e in json.loads(text))
    return texts, entries


def _data_version(store: Store) -> int:
    """Changes when another connection commits (never for this connection's own writes)."""
    return int(store.conn.execute("PRAGMA data_version").fetchone()[0])


def load_history(
    store: Store,
    env_key: str,
    before_run: int,
    per_test: int,
    *,
    rows_read: dict[str, str] | None = None,
    ahead: ReadAhead | None = None,
) -> tuple[list[int], dict[str, tuple[m.PastResult, ...]]]:
    """Each test's last `per_test` results in comparable runs (newest first), and the runs.

    `rows_read`, if given, gets the stored text of each test whose history is its whole row,
    for `save_baseline` to extend instead of encoding every earlier result again.
    """
    runs = baseline_runs(store, env_key, before_run, per_test * RUN_WINDOW_FACTOR)
    if not runs:
        return [], {}
    if (
        ahead is not None
        and ahead.env_key == env_key
        and ahead.data_version == _data_version(store)
    ):
        texts, rolling = ahead.texts, ahead.entries
    else:
        texts, rolling = _rolling_rows(store, env_key)
    history: dict[str, tuple[m.PastResult, ...]] = {}
    for nodeid, stored in rolling.items():
        # Newest first: when the newest is older than this run, so is every other one.
        if stored and stored[0][0] < before_run:
            entries = stored[:per_test]
        else:
            entries = tuple(e for e in stored if e[0] < before_run)[:per_test]
        if entries:
            history[nodeid] = entries
            if rows_read is not None and len(entries) == len(stored):
                rows_read[nodeid] = texts[nodeid]
    if not history:  # a store written before the rolling baseline existed
        history = _history_from_runs(store, runs, per_test)
    return runs, history


def fill_failing(
    store: Store,
    req: m.DetectRequest,
    current: Iterable[m.TestObservation],
    history: dict[str, tuple[m.PastResult, ...]],
    per_test: int,
) -> dict[str, tuple[m.PastResult, ...]]:
    """Failing tests the rolling baseline has no row for are looked up in the run history.

    The rolling baseline is derived data: a row can be missing (runs of a subset of the suite
    since the store was migrated, an interrupted write), and a missing row must not turn a
    test that passed before into one without a past, whose failure is then never new."""
    missing = [o.nodeid for o in current if o.outcome in m.FAILING and o.nodeid not in history]
    if not missing:
        return history
    rows = store.conn.execute(
        "SELECT h.run_id, r.commit_sha, r.dirty, h.outcome, h.call_ns, h.signature, h.nodeid,"
        " h.children FROM test_history h JOIN runs r ON r.id = h.run_id"
        f" WHERE h.env_key = ? AND h.run_id < ? AND h.nodeid IN ({','.join('?' * len(missing))})"
        " ORDER BY h.run_id DESC",
        [req.env_key, req.run_id, *missing],
    )
    return {**history, **_collect_past(rows, per_test)}


def _history_from_runs(
    store: Store, runs: list[int], per_test: int
) -> dict[str, tuple[m.PastResult, ...]]:
    marks = ",".join("?" * len(runs))
    rows = store.conn.execute(
        "SELECT h.run_id, r.commit_sha, r.dirty, h.outcome, h.call_ns, h.signature, h.nodeid,"
        " h.children FROM test_history h JOIN runs r ON r.id = h.run_id"
        f" WHERE h.run_id IN ({marks}) ORDER BY h.run_id DESC",
        runs,
    )
    return _collect_past(rows, per_test)


def _collect_past(rows: Iterable[Any], per_test: int) -> dict[str, tuple[m.PastResult, ...]]:
    """Rows of (run, commit, dirty, outcome, call_ns, signature, nodeid, children), newest
    first, as each test's last `per_test` results."""
    history: dict[str, list[m.PastResult]] = {}
    for run_id, commit, dirty, outcome, call_ns, sig, nodeid, children in rows:
        past = history.setdefault(nodeid, [])
        if len(past) < per_test:
            kids = json.loads(children) if children != "{}" else {}
            past.append(m.PastResult(run_id, commit, bool(dirty), outcome, call_ns, sig, kids))
    return {k: tuple(v) for k, v in history.items()}


def save_baseline(
    store: Store,
    req: m.DetectRequest,
    tests: Iterable[m.TestObservation],
    history: Mapping[str, tuple[m.PastResult, ...]],
    keep: int,
    *,
    rows_read: Mapping[str, str] | None = None,
) -> int:
    """Put this run at the head of each test's rolling history (one row per test).

    `rows_read`: the rows `history` was read from (see `load_history`); a row is extended
    as text, which is the same text as encoding the whole list again and much cheaper.
    """
    updates, inserts = [], []
    run_id = req.run_id
    read = rows_read or {}
    for t in tests:
        if not t.nodeid:
            continue
        # Traced durations are kept apart from untraced ones (see model.stored_call_ns).
        call_ns = m.stored_call_ns(t.call_ns, req.timed)
        entry = [run_id, req.commit, req.dirty, t.outcome, call_ns, t.signature]
        if t.children:
            entry.append(dict(t.children))
        past = history.get(t.nodeid, ())
        # A row read whole holds only runs older than this one (load_history reads before it).
        text = read.get(t.nodeid)
        row = _prepended(text, _json(entry), past, keep) if text and past else None
        if row is None:
            older = [_entry(p) for p in past if p[0] != run_id]
            row = _json([entry, *older][:keep])
        if text:  # the row exists: an update rewrites it in place, cheaper than a replace
            updates.append((run_id, row, req.env_key, t.nodeid))
        else:
            inserts.append((req.env_key, t.nodeid, run_id, row))
    with store.transaction() as conn:
        conn.executemany(
            "UPDATE test_baseline SET updated_run = ?, history = ?"
            " WHERE env_key = ? AND nodeid = ?",
            updates,
        )
        conn.executemany(
            "INSERT OR REPLACE INTO test_baseline (env_key, nodeid, updated_run, history)"
            " VALUES (?, ?, ?, ?)",
            inserts,
        )
    return len(updates) + len(inserts)


def _prepended(text: str, head: str, past: Sequence[m.PastResult], keep: int) -> str | None:
    """The stored row `text` of exactly `past` (newest first), with the encoded `head` entry
    in front and cut to `keep` entries; None when it cannot be done as text."""
    drop = len(past) + 1 - keep
    if drop <= 0:
        return f"[{head}, {text[1:]}"
    if drop == 1 and keep > 1:
        tail = f", {_json(_entry(past[-1]))}]"
        if text.endswith(tail):  # written as `_json` writes it, which it always is
            return f"[{head}, {text[1 : -len(tail)]}]"
    return None


def _entry(p: m.PastResult) -> tuple[object, ...]:
    """A result as its baseline entry: [run, commit, dirty, outcome, call_ns, signature] and the
    children only when there are any (a named tuple encodes as that list)."""
    return p[:6] if not p.children else (*p[:6], dict(p.children))


def _refuse(value: object) -> object:
    raise TypeError(f"{value!r} is not JSON")


# json.dumps makes a new encoder on every call, most of the cost of a row's small list; this
# one is made once and writes the same text (CPython's C encoder, json.dumps' separators).
_make = getattr(json.encoder, "c_make_encoder", None)
_C_JSON = (
    _make(None, _refuse, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    if _make is not None
    else None
)


def _json(value: object) -> str:
    return json.dumps(value) if _C_JSON is None else "".join(_C_JSON(value, 0))


def run_commit(store: Store, run_id: int) -> str:
    row = store.conn.execute("SELECT commit_sha FROM runs WHERE id = ?", (run_id,)).fetchone()
    return str(row[0]) if row else ""


def save_history(
    store: Store,
    run_id: int,
    env_key: str,
    tests: Iterable[m.TestObservation],
    *,
    timed: bool = True,
) -> int:
    """Index this run's tests for later baselines (derived from its stored spans).

    Durations measured under coverage tracing are stored apart (negative, see
    model.stored_call_ns), as in the rolling baseline: the learning phase judges slowdown fixes
    on the untraced ones only, a traced run is not slower code.
    """
    rows = [
        (
            run_id,
            env_key,
            t.nodeid,
            t.outcome,
            m.stored_call_ns(t.call_ns, timed),
            t.total_ns,
            t.signature,
            json.dumps(dict(t.children), sort_keys=True) if t.children else "{}",
        )
        for t in tests
        if t.nodeid
    ]
    with store.transaction() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO test_history (run_id, env_key, nodeid, outcome, call_ns,"
            " total_ns, signature, children) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)
