"""Production regressions: detector truth tables, and an instrumented app end to end."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from agent.conductor import Conductor
from agent.config import Config, load_config
from agent.coverage_map import save
from agent.phases.anomaly import DetectRequest, detect
from agent.phases.anomaly.model import AnomalyBaton
from agent.phases.anomaly.production import (
    OpSample,
    ProductionFacts,
    call_changes,
    detect_error_changes,
    detect_latency,
    detect_untested_hot_code,
    fisher_greater,
)
from agent.phases.anomaly.production_data import body_lines, frame_location
from agent.phases.telemetry import TelemetryRequest, ingest
from agent.receiver import Receiver, ReceiverSettings, phase_sink, wait_until_stored
from agent.records import Anomaly, AnomalyKind, CodeLocation, EventSource, TelemetryEvent
from agent.store import Store
from tests.agent.test_exporter import APP, run_app

CONFIG = Config()


def _baton(facts: ProductionFacts) -> AnomalyBaton:
    return AnomalyBaton(request=DetectRequest(run_id=7, detected_ns=1), production=facts)


def _op(op: str, durations: list[int], **kw: object) -> OpSample:
    return OpSample("shop", op, "B", tuple(durations), **kw)  # type: ignore[arg-type]


def _facts(current: list[OpSample], baseline: list[OpSample], **kw: object) -> ProductionFacts:
    return ProductionFacts(
        mode="version",
        current_label="shop B",
        baseline_label="shop A",
        current={("shop", s.operation): s for s in current},
        baseline={("shop", s.operation): s for s in baseline},
        **kw,  # type: ignore[arg-type]
    )


MS = 1_000_000


@pytest.mark.parametrize(
    ("before_ms", "after_ms", "flagged"),
    [
        (10, 10, False),  # unchanged
        (10, 12, False),  # 1.2x: below the effect size
        (1, 3, False),  # 3x but only 2 ms: below the timer-noise floor
        (10, 30, True),  # 3x and 20 ms
    ],
)
def test_latency_needs_effect_size_floor_and_rank_test(
    before_ms: int, after_ms: int, flagged: bool
) -> None:
    base = [before_ms * MS + i * 1000 for i in range(20)]
    cur = [after_ms * MS + i * 1000 + 500 for i in range(20)]
    facts = _facts([_op("GET /a", cur)], [_op("GET /a", base)])
    found = detect_latency(_baton(facts), CONFIG)
    assert bool(found) is flagged
    if found:
        assert found[0].evidence["ratio"] == pytest.approx(after_ms / before_ms, rel=0.01)


def test_a_slow_child_is_reported_instead_of_its_parent() -> None:
    base_parent = [20 * MS + i for i in range(20)]
    base_child = [5 * MS + i for i in range(20)]
    cur_parent = [45 * MS + i for i in range(20)]
    cur_child = [30 * MS + i for i in range(20)]
    facts = _facts(
        [_op("GET /a", cur_parent, children={"SELECT": (1,) * 20}), _op("SELECT", cur_child)],
        [_op("GET /a", base_parent), _op("SELECT", base_child)],
    )
    assert [a.subject for a in detect_latency(_baton(facts), CONFIG)] == ["shop/SELECT"]


def test_new_exception_and_error_spike_with_minimum_count() -> None:
    cur = _op("POST /pay", [MS] * 40, errors=10, signatures={"KeyError@pay.py:total": 10})
    base = _op("POST /pay", [MS] * 40)
    found = detect_error_changes(_baton(_facts([cur], [base])), CONFIG)
    assert [(a.subtype, a.severity.value) for a in found] == [("new_exception", "high")]
    # A known signature whose rate jumps is a spike, but only from error_min_count errors on.
    known = {"KeyError@pay.py:total": 1}
    few = _op("POST /pay", [MS] * 40, errors=4, signatures={"KeyError@pay.py:total": 4})
    many = _op("POST /pay", [MS] * 40, errors=20, signatures={"KeyError@pay.py:total": 20})
    base = _op("POST /pay", [MS] * 40, errors=1, signatures=known)
    assert detect_error_changes(_baton(_facts([few], [base])), CONFIG) == []
    spike = detect_error_changes(_baton(_facts([many], [base])), CONFIG)
    assert [a.subtype for a in spike] == ["error_rate_spike"]


def test_fisher_edges() -> None:
    assert fisher_greater(0, 10, 0, 10) == 1.0
    assert fisher_greater(10, 10, 0, 10) < 1e-4
    assert fisher_greater(1, 10, 1, 10) > 0.5


def test_n_plus_one_new_and_vanished_calls() -> None:
    base = _op("GET /o", [MS] * 10, parents=10, children={"SELECT": (1,) * 10, "cache": (1,) * 10})
    cur = _op("GET /o", [MS] * 10, parents=10, children={"SELECT": (12,) * 10, "http": (1,) * 10})
    changes = {(s, c) for s, c, _ in call_changes(cur, base, 0.05)}
    assert changes == {("n_plus_one", "SELECT"), ("new_call", "http"), ("vanished_call", "cache")}
    same = call_changes(base, base, 0.05)
    assert same == []


def test_hot_untested_code_needs_a_coverage_map() -> None:
    loc = CodeLocation("shop.py", "shop.refund", 3)
    facts = _facts(
        [_op("POST /refund", [MS] * 50)],
        [],
        hot_functions={"shop.py:shop.refund": (loc, 50)},
        coverage_known=True,
    )
    found = detect_untested_hot_code(_baton(facts), CONFIG)
    assert [(a.kind, a.location) for a in found] == [(AnomalyKind.COVERAGE, loc)]
    covered = _facts(
        [],
        [],
        hot_functions=facts.hot_functions,
        coverage_known=True,
        tests_by_function={"shop.py:shop.refund": ("tests/test_shop.py::test_refund",)},
    )
    assert detect_untested_hot_code(_baton(covered), CONFIG) == []


def test_frames_and_function_bodies(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import x\n\n@dec\ndef f(a):\n    b = a\n    return b\n", encoding="utf-8")
    assert body_lines(source, 3) == {5, 6}
    stack = (
        "Traceback (most recent call last):\n"
        f'  File "{tmp_path}/m.py", line 5, in f\n'
        '  File "/usr/lib/python3/site-packages/lib.py", line 9, in g\n'
        "ValueError: boom\n"
    )
    assert frame_location(stack, tmp_path) == CodeLocation("m.py", "f", 5)


# End to end -----------------------------------------------------------------------------------


def _signature(anomalies: tuple[Anomaly, ...]) -> set[tuple[str, str, str, str, int]]:
    return {
        (a.kind.value, a.subtype, a.subject.split("#", 1)[0], a.location.function, a.location.line)
        for a in anomalies
    }


def _detect(root: Path, store: Path, run_id: int) -> tuple[Anomaly, ...]:
    with Conductor(load_config(root, {"store": str(store)})) as conductor:
        return detect(conductor, DetectRequest(run_id=run_id, root=root))


def _via_spool(root: Path, tmp_path: Path) -> tuple[Anomaly, ...]:
    store = tmp_path / "spool.db"
    run_id = 0
    for version in ("A", "B"):
        spool_dir = tmp_path / f"spool-{version}"
        env = {"OTEL_TRACES_EXPORTER": "selfheal", "SELFHEAL_SPOOL_DIR": str(spool_dir)}
        run_app(version, env, cwd=root)
        with Conductor(load_config(root, {"store": str(store)})) as conductor:
            request = TelemetryRequest(sources=(spool_dir,), run_kind="ingest", keep_raw=True)
            run_id = ingest(conductor, request).run_id
    return _detect(root, store, run_id)


def _via_receiver(root: Path, tmp_path: Path) -> tuple[Anomaly, ...]:
    store = tmp_path / "otlp.db"
    with Conductor(load_config(root, {"store": str(store)})) as conductor:
        with Receiver(phase_sink(conductor), ReceiverSettings(port=0)) as receiver:
            env = {
                "OTEL_TRACES_EXPORTER": "otlp_proto_http",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url,
            }
            for version in ("A", "B"):
                run_app(version, env, cwd=root)
            assert wait_until_stored(receiver, 2 * 30 * 5)
        run_id = (
            conductor.store()
            .conn.execute("SELECT max(id) FROM runs WHERE kind = 'receiver'")
            .fetchone()[0]
        )
    return _detect(root, store, int(run_id))


@pytest.mark.slow
def test_instrumented_app_regressions_found_through_both_paths(tmp_path: Path) -> None:
    root = tmp_path / "app"
    shutil.copytree(APP, root)
    by_spool = _via_spool(root, tmp_path)
    by_otlp = _via_receiver(root, tmp_path)
    expected = {
        ("performance", "slowdown", "shop/GET /items", "shop.list_items", 45),
        ("error", "new_exception", "shop/POST /checkout", "price", 54),
    }
    assert _signature(by_spool) == expected
    assert _signature(by_otlp) == expected
    slow = next(a for a in by_spool if a.subtype == "slowdown")
    assert slow.location.file == "shop.py"
    assert float(slow.evidence["ratio"]) > 3
    assert float(slow.evidence["p_adjusted"]) < 0.001


def _span(i: int, op: str, dur_ms: float, file: str, func: str) -> TelemetryEvent:
    return TelemetryEvent(
        source=EventSource.SPAN,
        service="api",
        version="7",
        operation=op,
        start_ns=1_700_000_000_000_000_000 + i * 1000,
        duration_ns=int(dur_ms * MS) + i,
        trace_id=f"{i + 1:032x}",
        span_id=f"{i + 1:016x}",
        location=CodeLocation(file, func, 0),
    )


def test_window_mode_with_a_coverage_map(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "api").mkdir(parents=True)
    (root / "api" / "views.py").write_text(
        "def report():\n    return 1\n\n\ndef export():\n    return 2\n", encoding="utf-8"
    )
    store_path = tmp_path / "s.db"
    with Store.open(store_path) as store:
        before = store.begin_run("agent-window")
        store.insert_events(
            before, [_span(i, "GET /report", 10, "api/views.py", "report") for i in range(30)]
        )
        now = store.begin_run("agent-window")
        store.insert_events(
            now,
            [_span(i, "GET /report", 40, "api/views.py", "report") for i in range(30)]
            + [_span(i, "GET /export", 1, "api/views.py", "export") for i in range(30)],
        )
        save(
            store,
            {"tests/test_views.py::test_report": {"api/views.py": [2]}},
            {"api/views.py": [1, 2, 5, 6]},
            commit="c0",
            dirty=False,
        )
    found = {(a.subtype, a.subject): a for a in _detect(root, store_path, now)}
    slow = found[("slowdown", "api/GET /report")]
    assert slow.evidence["mode"] == "window"
    assert slow.location == CodeLocation("api/views.py", "report", 1)
    assert slow.tests == ("tests/test_views.py::test_report",)
    gap = found[("untested_hot_code", "api/views.py:export")]
    assert gap.kind is AnomalyKind.COVERAGE
    assert gap.tests == ()
    assert len(found) == 2


def test_a_version_regression_keeps_one_id_across_windows(tmp_path: Path) -> None:
    store_path = tmp_path / "s.db"
    runs = []
    with Store.open(store_path) as store:
        for version, ms_ in (("A", 10), ("B", 40), ("B", 40)):
            run = store.begin_run("agent-window")
            spans = [_span(i, "GET /report", ms_, "api/views.py", "report") for i in range(20)]
            store.insert_events(run, [dataclasses.replace(e, version=version) for e in spans])
            runs.append(run)
    first = _detect(tmp_path, store_path, runs[1])
    second = _detect(tmp_path, store_path, runs[2])
    assert [a.subtype for a in first] == ["slowdown"]
    assert [a.id for a in first] == [a.id for a in second]
    assert first[0].evidence["mode"] == "version"


def test_test_runs_are_left_to_the_test_detectors(tmp_path: Path) -> None:
    store_path = tmp_path / "s.db"
    with Store.open(store_path) as store:
        before = store.begin_run("test")
        store.insert_events(before, [_span(i, "GET /r", 10, "a.py", "r") for i in range(20)])
        now = store.begin_run("test")
        store.insert_events(now, [_span(i, "GET /r", 50, "a.py", "r") for i in range(20)])
        window = store.begin_run("agent-window")
        store.insert_events(window, [_span(i, "GET /r", 50, "a.py", "r") for i in range(20)])
    assert _detect(tmp_path, store_path, now) == ()
    # Nor are spans under tests a baseline for production: the window has nothing to compare.
    assert _detect(tmp_path, store_path, window) == ()
