"""Hand-written span and metric rows equal the record path's; payloads decode to the same record."""

from __future__ import annotations

import json
import random
from pathlib import Path

from agent import records as rec
from agent.phases.telemetry.aggregate import Aggregator
from agent.phases.telemetry.normalise import LinkIndex, LinkState, normalise
from agent.phases.telemetry.raw import RawEvent
from agent.phases.telemetry.rows import BY_HAND, METRICS_BY_HAND, metric_rows, span_rows
from agent.records import CodeLocation, EventSource, SpanStatus, TelemetryEvent
from agent.store import Store, event_row

ODD = ("plain", 'quo"te', "back\\slash", "tab\tnew\nline", "ünïcødé ✓", "\x00ctl", "")


def _events(rng: random.Random, n: int) -> list[TelemetryEvent]:
    out = []
    for i in range(n):
        failing = i % 5 == 0
        out.append(
            TelemetryEvent(
                source=EventSource.SPAN if i % 7 else EventSource.TEST,
                service=rng.choice(ODD[:5]),
                operation=rng.choice(ODD) or "op",
                start_ns=rng.randrange(2**62),
                duration_ns=rng.randrange(2**40),
                status=SpanStatus.ERROR if failing else SpanStatus.OK,
                version=rng.choice(("", "1.0", "ü2")),
                trace_id=f"{i // 3 + 1:032x}",
                span_id=f"{i + 1:016x}",
                parent_span_id=f"{i:016x}" if i % 3 else "",
                location=CodeLocation("a.py", "m.f", 3) if i % 2 else CodeLocation(),
                exception_type="ValueError" if failing else "",
                exception_message=rng.choice(ODD) if failing else "",
                exception_stacktrace='File "a.py", line 3, in f\n' if failing else "",
                attributes={
                    "s": rng.choice(ODD),
                    "i": rng.randrange(-(2**63), 2**63),
                    "f": rng.random(),
                    "b": bool(i % 2),
                    "code.function.name": "pkg.mod.fn",
                    "code.file.path": "pkg/mod.py",
                },
            )
        )
    return out


def test_rows_match_the_record_path_field_for_field() -> None:
    assert BY_HAND  # TelemetryEvent's fields are the ones written by hand
    events = _events(random.Random(7), 300)
    raws = normalise(
        [RawEvent.from_record(e) for e in events],
        LinkState(LinkIndex(1000)),
        final=True,
    )
    assert len(raws) == len(events)
    assert any(r.parent_operation for r in raws) and any(r.signature for r in raws)
    for got, raw in zip(span_rows(42, raws), raws, strict=True):
        want = list(event_row(42, raw.to_event()))
        assert list(got[:-1]) == want[:-1]
        assert rec.from_json(json.loads(got[-1]), rec.TelemetryEvent) == raw.to_event()


def test_metric_rows_are_the_rows_insert_metrics_writes(tmp_path: Path) -> None:
    assert METRICS_BY_HAND  # TelemetryMetrics' fields are the ones written by hand
    raws = normalise(
        [RawEvent.from_record(e) for e in _events(random.Random(3), 400)],
        LinkState(LinkIndex(1000)),
        final=True,
    )
    aggregator = Aggregator(max_operations=50, exemplars=3)
    aggregator.add_all(raws)
    metrics = aggregator.metrics()
    assert any(m.edges for m in metrics) and any(m.exceptions for m in metrics)
    assert any(m.location.file for m in metrics) and all(m.sketch for m in metrics)
    with Store.open(tmp_path / "s.db") as store:
        by_record, by_hand = store.begin_run("ingest"), store.begin_run("ingest")
        store.insert_metrics(by_record, metrics)
        store.insert_metric_rows(metric_rows(by_hand, metrics))
        rows = store.conn.execute(
            "SELECT run_id, service, operation, version, window_start_ns, window_end_ns, payload"
            " FROM metrics ORDER BY id"
        ).fetchall()
        assert store.metrics(by_hand) == list(metrics)
    half = len(rows) // 2
    assert [r[1:] for r in rows[:half]] == [r[1:] for r in rows[half:]]  # the same text
