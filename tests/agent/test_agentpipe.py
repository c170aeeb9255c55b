"""Detection on closed telemetry windows, through the real anomaly phase and store."""

from __future__ import annotations

import random
from pathlib import Path

from agent import agentpipe
from agent.config import load_config
from agent.ingest import WINDOW_RUN_KIND
from agent.records import (
    Anomaly,
    AnomalyKind,
    CodeLocation,
    EventSource,
    SpanStatus,
    TelemetryEvent,
)
from agent.store import Store


def window_events(version: str, ms: float, count: int, first: int) -> list[TelemetryEvent]:
    rnd = random.Random(first)
    return [
        TelemetryEvent(
            source=EventSource.SPAN,
            service="shop",
            version=version,
            operation="GET /cart",
            start_ns=1_700_000_000_000_000_000 + first + i,
            duration_ns=int(rnd.gauss(ms, ms * 0.1) * 1e6),
            status=SpanStatus.OK,
            trace_id=f"{first + i:032x}",
            span_id=f"{first + i:016x}",
            location=CodeLocation("shop/cart.py", "cart", 3),
        )
        for i in range(count)
    ]


def _window(store: Store, events: list[TelemetryEvent]) -> int:
    run_id = store.begin_run(WINDOW_RUN_KIND)
    store.insert_events(run_id, events)
    store.end_run(run_id, "ok")
    return run_id


def test_a_slower_version_in_a_window_is_an_anomaly(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    with Store.open(config.store) as store:
        _window(store, window_events("1", 10, 300, 0))
        current = _window(store, window_events("2", 30, 300, 10_000))
    ids = agentpipe.detect_window(config, current)
    assert len(ids) == 1
    with Store.open(config.store) as store:
        anomaly = store.get(ids[0], Anomaly)
        beats = store.conn.execute("SELECT count(*) FROM runs WHERE kind = 'pipeline'")
        assert beats.fetchone()[0] == 1  # the agent's own beats are stored as telemetry
    assert anomaly is not None and anomaly.kind is AnomalyKind.PERFORMANCE
    assert anomaly.location.function == "cart"


def test_an_unchanged_window_is_quiet(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    with Store.open(config.store) as store:
        _window(store, window_events("1", 10, 300, 0))
        current = _window(store, window_events("1", 10, 300, 10_000))
    assert agentpipe.detect_window(config, current) == []
