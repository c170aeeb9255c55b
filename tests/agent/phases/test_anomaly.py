"""The anomaly phase: detectors on hand-made batons, and the whole sequence on a real store."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agent.conductor import Conductor
from agent.config import Config
from agent.phases.anomaly import (
    aggregate,
    behavioral,
    detect,
    detect_run,
    errors,
    gaps,
    performance,
)
from agent.phases.anomaly.model import (
    AnomalyBaton,
    Confirmation,
    CoverageFacts,
    DetectRequest,
    PastResult,
    TestObservation,
    stored_call_ns,
    traced_ns,
)
from agent.phases.telemetry import TelemetryRequest, ingest
from agent.records import (
    Anomaly,
    AnomalyKind,
    CodeLocation,
    EventSource,
    Severity,
    SpanStatus,
    TelemetryEvent,
)
from agent.store import Store

MS = 1_000_000
CONFIG = Config()
REQ = DetectRequest(run_id=9, commit="c2", detected_ns=1)


def obs(
    nodeid: str = "t.py::test_a", outcome: str = "passed", call_ms: float = 10, **kw: object
) -> TestObservation:
    return TestObservation(nodeid, outcome, int(call_ms * MS), int(call_ms * MS), **kw)  # type: ignore[arg-type]


def past(
    outcome: str = "passed", call_ms: float = 10, commit: str = "c1", run_id: int = 1, **kw: object
) -> PastResult:
    return PastResult(run_id, commit, False, outcome, int(call_ms * MS), **kw)  # type: ignore[arg-type]


def baton(
    current: list[TestObservation], history: dict[str, list[PastResult]], **kw: object
) -> AnomalyBaton:
    return AnomalyBaton(
        request=REQ,
        current=tuple(current),
        history={k: tuple(v) for k, v in history.items()},
        baseline_runs=(1,),
        baseline_commit="c1",
        **kw,  # type: ignore[arg-type]
    )


def test_slowdown_needs_ratio_floor_and_a_significant_rerun_sample() -> None:
    history = {"t.py::test_a": [past(call_ms=10 + i * 0.1) for i in range(5)]}
    current = [obs(call_ms=30)]
    (suspect,) = performance.screen(current, history, CONFIG)
    assert suspect.reruns >= CONFIG.perf_reruns and suspect.still_slow(30 * MS)
    confirmed = Confirmation(durations={"t.py::test_a": tuple(int(29e6 + i) for i in range(6))})
    (anomaly,) = performance.detect_slowdowns(
        baton(current, history, confirmation=confirmed), CONFIG
    )
    assert anomaly.kind is AnomalyKind.PERFORMANCE and anomaly.severity is Severity.HIGH
    assert anomaly.evidence["n_current"] == 6 and anomaly.evidence["n_baseline"] == 5
    assert float(anomaly.evidence["p_adjusted"]) <= 0.05
    refuted = Confirmation(durations={"t.py::test_a": ()})
    assert performance.detect_slowdowns(baton(current, history, confirmation=refuted), CONFIG) == []


def test_a_run_under_coverage_tracing_is_judged_relative_to_its_tracing_slowdown() -> None:
    steady = [past(call_ms=10 + i * 0.1) for i in range(5)]
    names = [f"t.py::test_{i}" for i in range(12)]
    history = dict.fromkeys(names, steady)
    # Tracing made every test about 2x slower; test_4 is 6x slower.
    traced = [obs(n, call_ms=20 + i * 0.2) for i, n in enumerate(names) if n != "t.py::test_4"]
    traced.append(obs("t.py::test_4", call_ms=60))
    suspects = performance.screen(traced, history, CONFIG, timed=False)
    assert [s.nodeid for s in suspects] == ["t.py::test_4"]
    assert len(performance.screen(traced, history, CONFIG)) == 12  # as if untraced: all
    # Too few tests to tell tracing from a slowdown: screened as measured.
    assert len(performance.screen(traced[-3:], history, CONFIG, timed=False)) == 3
    request = dataclasses.replace(REQ, timed=False)
    unconfirmed = dataclasses.replace(baton(traced, history), request=request)
    assert performance.detect_slowdowns(unconfirmed, CONFIG) == []  # traced durations alone
    rerun = Confirmation(durations={"t.py::test_4": tuple(int(30e6 + i) for i in range(6))})
    confirmed = dataclasses.replace(baton(traced, history, confirmation=rerun), request=request)
    (anomaly,) = performance.detect_slowdowns(confirmed, CONFIG)
    assert anomaly.subject == "t.py::test_4" and anomaly.evidence["n_current"] == 6


def test_a_traced_run_compares_a_test_with_its_own_earlier_traced_durations() -> None:
    names = [f"t.py::test_{i}" for i in range(12)]
    history = {n: [past(call_ms=20 + i * 0.1) for i in range(5)] for n in names}
    others = [obs(n, call_ms=34 + i * 0.1) for i, n in enumerate(names[1:])]  # tracing: 1.7x
    as_before = [obs(names[0], call_ms=48.5), *others]  # test_0: 2.4x, as always under tracing
    assert [s.nodeid for s in performance.screen(as_before, history, CONFIG, timed=False)] == [
        "t.py::test_0"  # without its traced history, more than tracing explains
    ]
    traced = [stored_call_ns(int((48 + i * 0.4) * MS), timed=False) for i in range(3)]
    history["t.py::test_0"] += [past(run_id=2)._replace(call_ns=c) for c in traced]
    assert performance.screen(as_before, history, CONFIG, timed=False) == []
    slower = [obs(names[0], call_ms=120), *others]
    (suspect,) = performance.screen(slower, history, CONFIG, timed=False)
    assert suspect.nodeid == "t.py::test_0"
    assert all(b >= 0 for b in suspect.baseline)  # re-runs are judged against untraced runs


def test_a_noisy_test_within_its_usual_spread_is_no_suspect() -> None:
    noisy = [past(call_ms=ms) for ms in (20, 60, 35, 45, 25, 50, 30)]  # median 35, wide spread
    assert performance.screen([obs(call_ms=50)], {"t.py::test_a": noisy}, CONFIG) == []
    (suspect,) = performance.screen([obs(call_ms=120)], {"t.py::test_a": noisy}, CONFIG)
    assert suspect.nodeid == "t.py::test_a" and not suspect.still_slow(50 * MS)


def test_no_slowdown_under_the_floor_or_with_a_tolerant_marker() -> None:
    history = {"t.py::test_a": [past(call_ms=1) for _ in range(5)]}
    assert performance.screen([obs(call_ms=3)], history, CONFIG) == []  # 3x but +2 ms < floor
    assert (
        performance.screen(
            [obs(call_ms=30, ratio=50.0)], {"t.py::test_a": [past(call_ms=10)] * 5}, CONFIG
        )
        == []
    )
    assert (
        performance.screen([obs(call_ms=30)], {"t.py::test_a": [past(call_ms=10)]}, CONFIG) == []
    )  # 1 run


def test_new_failures_are_grouped_by_signature() -> None:
    sig = "ZeroDivisionError@app.py:ratio"
    current = [
        obs("t.py::a", "failed", signature=sig, message="division by zero"),
        obs("t.py::b", "failed", signature=sig),
        obs("t.py::c", "failed", signature="KeyError@app.py:get"),
        obs("t.py::d", "failed", signature=sig),  # never passed before: not new
    ]
    history = {n: [past()] for n in ("t.py::a", "t.py::b", "t.py::c")}
    history["t.py::d"] = [past("failed", signature=sig)]
    conf = Confirmation(
        alone={"t.py::a": ("failed",) * 3, "t.py::b": ("failed",) * 3, "t.py::c": ("failed",) * 3}
    )
    found = errors.detect_new_failures(baton(current, history, confirmation=conf), CONFIG)
    by_subject = {a.subject: a for a in found}
    assert set(by_subject) == {sig, "KeyError@app.py:get"}
    assert by_subject[sig].tests == ("t.py::a", "t.py::b")
    assert by_subject[sig].location == CodeLocation(file="app.py", function="ratio")
    assert by_subject[sig].confidence == 0.95


def test_flaky_by_history_and_by_rerun_is_not_a_regression() -> None:
    req = dataclasses.replace(REQ, commit="c1")
    current = [obs("t.py::a", "failed", signature="X@a"), obs("t.py::b", "failed")]
    history = {"t.py::a": [past(commit="c1")], "t.py::b": [past(commit="c0")]}
    conf = Confirmation(alone={"t.py::b": ("passed", "failed", "passed")})
    b = dataclasses.replace(baton(current, history, confirmation=conf), request=req)
    assert errors.detect_new_failures(b, CONFIG) == []
    flaky = {a.subject: a.evidence["source"] for a in errors.detect_flaky(b, CONFIG)}
    assert flaky == {"t.py::a": "history on this commit", "t.py::b": "re-run alone"}


def test_order_dependence_needs_pass_alone_and_fail_after_predecessors() -> None:
    current = [obs("t.py::a", "failed")]
    history = {"t.py::a": [past()]}
    conf = Confirmation(alone={"t.py::a": ("passed",) * 3}, in_order={"t.py::a": "failed"})
    (anomaly,) = behavioral.detect_order_dependence(
        baton(current, history, confirmation=conf), CONFIG
    )
    assert (anomaly.kind, anomaly.subtype) == (AnomalyKind.BEHAVIORAL, "order_dependent")
    assert errors.detect_new_failures(baton(current, history, confirmation=conf), CONFIG) == []
    not_again = Confirmation(alone={"t.py::a": ("passed",) * 3}, in_order={"t.py::a": "passed"})
    assert (
        behavioral.detect_order_dependence(baton(current, history, confirmation=not_again), CONFIG)
        == []
    )


@pytest.mark.parametrize(
    ("before", "now", "expected"),
    [
        ({"db.query": 1}, {"db.query": 1}, []),
        ({"db.query": 1}, {"db.query": 10}, ["n_plus_one"]),
        ({"db.query": 2}, {"db.query": 4}, []),  # doubled but only 2 more calls
        ({"db.query": 1}, {"db.query": 1, "cache.get": 1}, ["new_call"]),
        ({"db.query": 1, "audit": 1}, {"db.query": 1}, ["missing_call"]),
    ],
)
def test_call_changes(before: dict[str, int], now: dict[str, int], expected: list[str]) -> None:
    assert [c[0] for c in behavioral.call_changes(before, now)] == expected


def test_call_changes_ignore_tests_whose_calls_vary() -> None:
    varying = [past(children={"q": 1}), past(children={"q": 2})]
    assert behavioral.stable_children(varying) is None
    steady = [past(children={"q": 1}), past(children={"q": 1})]
    found = behavioral.detect_call_changes(
        baton([obs(children={"q": 12})], {"t.py::test_a": steady}), CONFIG
    )
    assert [(a.subtype, a.evidence["calls_now"]) for a in found] == [("n_plus_one", 12)]


def test_coverage_gap_and_drop() -> None:
    facts = CoverageFacts(
        uncovered_changed={"app.py": (3, 4, 5, 9)},
        changed_statements=6,
        total_now=80.0,
        total_before=90.0,
        before_commit="c1",
    )
    b = baton([], {}, coverage=facts)
    (gap,) = gaps.detect_uncovered_changes(b, CONFIG)
    assert gap.evidence["lines"] == "3-5,9" and gap.location.line == 3
    (drop,) = gaps.detect_coverage_drop(b, CONFIG)
    assert drop.severity is Severity.HIGH and drop.evidence["drop_points"] == 10.0
    small = dataclasses.replace(facts, total_now=89.5)
    assert gaps.detect_coverage_drop(baton([], {}, coverage=small), CONFIG) == []


def test_aggregate_dedupes_and_sorts_by_severity_then_confidence() -> None:
    history = {"t.py::a": [past()], "t.py::b": [past()]}
    current = [obs("t.py::a", "failed", signature="A@x"), obs("t.py::b", "failed", signature="B@y")]
    conf = Confirmation(alone={"t.py::a": ("failed",) * 3})  # b unconfirmed: lower confidence
    found = errors.detect_new_failures(baton(current, history, confirmation=conf), CONFIG)
    ordered = aggregate((*found, *found))
    assert [a.subject for a in ordered] == ["A@x", "B@y"]


def _test_event(
    nodeid: str, outcome: str, call_ms: float, span_id: str, sig: str = ""
) -> TelemetryEvent:
    return TelemetryEvent(
        source=EventSource.TEST,
        service="pytest",
        operation=nodeid.rsplit("::", maxsplit=1)[-1],
        start_ns=1,
        duration_ns=int(call_ms * MS),
        span_id=span_id,
        trace_id="1" * 32,
        status=SpanStatus.ERROR if sig else SpanStatus.OK,
        exception_signature=sig,
        exception_type=sig.split("@", maxsplit=1)[0],
        attributes={
            "selfheal.test.nodeid": nodeid,
            "selfheal.test.outcome": outcome,
            "selfheal.test.call_ns": int(call_ms * MS),
        },
    )


def test_detect_on_a_real_store_through_the_telemetry_phase(tmp_path: Path) -> None:
    config = Config(root=tmp_path, store=tmp_path / "s.db")
    with Store.open(config.store) as store:
        conductor = Conductor(config, store_factory=lambda: store)
        runs = []
        for outcome, sig in (("passed", ""), ("passed", ""), ("failed", "KeyError@app.py:get")):
            events = (
                _test_event("t.py::a", outcome, 5, "a" * 16, sig),
                _test_event("t.py::b", "passed", 5, "b" * 16),
            )
            out = ingest(
                conductor,
                TelemetryRequest(
                    events=events,
                    run_kind="test",
                    env_key="e",
                    commit=f"c{len(runs)}",
                    keep_raw=True,
                ),
            )
            runs.append(out.run_id)
            anomalies = detect(
                conductor, DetectRequest(run_id=out.run_id, env_key="e", commit=f"c{len(runs)}")
            )
        conductor.close()
        (anomaly,) = anomalies
        assert anomaly.subtype == "new_failure" and anomaly.tests == ("t.py::a",)
        assert anomaly.baseline_run_id == runs[1]
        assert store.find(type(anomaly), run_id=runs[2]) == [anomaly]
        rows = store.conn.execute("SELECT count(*) FROM test_history").fetchone()[0]
        assert rows == 6


def _run_with_one_history_row(store: Store) -> int:
    """A test run whose only trace is a `test_history` row (no rolling baseline row)."""
    run = store.begin_run("test", commit="c1", env_key="e")
    store.conn.execute(
        "INSERT INTO test_history (run_id, env_key, nodeid, outcome, call_ns, total_ns)"
        " VALUES (?, 'e', 't.py::a', 'passed', 7, 9)",
        (run,),
    )
    return run


def test_history_from_a_store_without_the_rolling_baseline(tmp_path: Path) -> None:
    from agent.phases.anomaly import baseline

    with Store.open(tmp_path / "s.db") as store:
        run = _run_with_one_history_row(store)
        runs, history = baseline.load_history(store, "e", run + 1, 20)
        assert runs == [run]
        assert history == {"t.py::a": (PastResult(run, "c1", False, "passed", 7, "", {}),)}


def test_a_failing_test_missing_from_the_rolling_baseline_is_compared_with_its_runs(
    tmp_path: Path,
) -> None:
    config = Config(root=tmp_path, store=tmp_path / "s.db")
    with Store.open(config.store) as store:
        conductor = Conductor(config, store_factory=lambda: store)

        def run(commit: str, outcome: str, sig: str = "") -> tuple[Anomaly, ...]:
            events = (
                _test_event("t.py::a", outcome, 5, "a" * 16, sig),
                _test_event("t.py::b", "passed", 5, "b" * 16),
            )
            out = ingest(
                conductor,
                TelemetryRequest(events=events, run_kind="test", env_key="e", commit=commit),
            )
            return detect(conductor, DetectRequest(run_id=out.run_id, env_key="e", commit=commit))

        run("c1", "passed")
        run("c1", "passed")
        # The derived per-test row is gone (an interrupted write, a subset run after a
        # migration); the stored runs still say the test passed before.
        store.conn.execute("DELETE FROM test_baseline WHERE nodeid = 't.py::a'")
        (anomaly,) = run("c2", "failed", "KeyError@app.py:get")
        conductor.close()
    assert anomaly.subtype == "new_failure" and anomaly.tests == ("t.py::a",)


def test_durations_under_coverage_tracing_never_become_baseline(tmp_path: Path) -> None:
    from agent.phases.anomaly import baseline

    with Store.open(tmp_path / "s.db") as store:
        run = store.begin_run("test", commit="c1", env_key="e")
        req = DetectRequest(run_id=run, env_key="e", commit="c1", timed=False)
        baseline.save_history(store, run, "e", [obs("t.py::a", call_ms=40)], timed=False)
        baseline.save_baseline(store, req, [obs("t.py::a", call_ms=40)], {}, 20)
        _, history = baseline.load_history(store, "e", run + 1, 20)
        assert traced_ns(history["t.py::a"][0].call_ns) == 40 * MS
        (indexed,) = store.conn.execute("SELECT call_ns FROM test_history").fetchone()
        assert traced_ns(indexed) == 40 * MS
        assert performance.baseline_sample(history["t.py::a"]) == []
        assert performance.traced_sample(history["t.py::a"]) == [40 * MS]
        assert traced_ns(-1) is None and traced_ns(0) is None  # -1: an older store's traced run


def _recorded_session() -> tuple[TelemetryEvent, ...]:
    """A test session as the plugin records it, made with the OTel SDK: a session span, tests
    under it (children first, as they end first), instrumented calls and calls of calls under
    the tests, failures with real exceptions, a per-test threshold marker."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from agent.otel import span_to_event

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "pytest"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    tests: set[str] = set()
    with tracer.start_as_current_span("pytest session"):
        for i, outcome in enumerate(("passed", "failed", "passed", "error", "skipped")):
            nodeid = f"tests/test_app.py::test_{i}"
            attrs: dict[str, str | int | float] = {
                "selfheal.test.nodeid": nodeid,
                "selfheal.test.outcome": outcome,
                "selfheal.test.call_ns": 1000 * (i + 1),
                "selfheal.test.worker": "gw0",
                "code.file.path": "tests/test_app.py",
                "code.line.number": 10 * i + 3,
                "code.function.name": f"test_{i}",
            }
            if i == 2:
                attrs["selfheal.threshold.ratio"] = 2.0
            with tracer.start_as_current_span(f"test_{i}", attributes=attrs) as test:
                tests.add(test.get_span_context().span_id)
                for _ in range(i):  # calls of calls: counted under the test they ran in
                    with (
                        tracer.start_as_current_span("db.query"),
                        tracer.start_as_current_span("db.connect"),
                    ):
                        pass
                if outcome in ("failed", "error"):
                    try:
                        {}["missing"]
                    except KeyError as exc:
                        test.record_exception(exc)
                        test.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    spans = memory.get_finished_spans()
    events = []
    for s in spans:
        is_test = s.context.span_id in tests or not s.parent  # a test, or the session
        events.append(span_to_event(s, EventSource.TEST if is_test else EventSource.SPAN))
    return tuple(events)


def test_observations_handed_on_equal_those_read_back_from_the_store(tmp_path: Path) -> None:
    from agent.phases.anomaly import baseline

    config = Config(root=tmp_path, store=tmp_path / "s.db")
    events = _recorded_session()
    with Store.open(config.store) as store, Conductor(config, store_factory=lambda: store) as cond:
        out = ingest(
            cond,
            TelemetryRequest(events=events, run_kind="test", keep_raw=True, hand_on=True),
        )
        handed = baseline.current_from_events(out.handed_on)
        read_back = baseline.load_current(store, out.run_id)
        from_records = baseline.current_from_events(store.events(out.run_id))
        baton = detect_run(cond, DetectRequest(run_id=out.run_id, events=out.handed_on))
    assert handed == read_back == from_records == baton.current
    by_id = {o.nodeid.rsplit("_", 1)[-1]: o for o in handed}
    assert [o.outcome for o in handed] == ["passed", "failed", "passed", "error", "skipped"]
    assert by_id["3"].children == {"db.query": 3, "db.connect": 3}
    assert by_id["0"].children == {}
    assert by_id["1"].signature.startswith("KeyError") and "missing" in by_id["1"].message
    assert (by_id["2"].ratio, by_id["2"].line, by_id["2"].worker) == (2.0, 23, "gw0")
    assert by_id["4"].call_ns == 5000 and by_id["4"].file == "tests/test_app.py"


def test_baseline_runs_are_the_newest_earlier_runs_of_the_environment(tmp_path: Path) -> None:
    from agent.phases.anomaly import baseline

    with Store.open(tmp_path / "s.db") as store:
        envs = ["e", "other", "e", "e", "other", "e"]
        runs = [store.begin_run("test", env_key=env) for env in envs]
        for run, env in zip(runs, envs, strict=True):
            for test in ("t.py::a", "t.py::b"):
                store.conn.execute(
                    "INSERT INTO test_history (run_id, env_key, nodeid, outcome, call_ns,"
                    " total_ns) VALUES (?, ?, ?, 'passed', 1, 1)",
                    (run, env, test),
                )
        e_runs = [r for r, env in zip(runs, envs, strict=True) if env == "e"]
        assert baseline.baseline_runs(store, "e", runs[-1], 2) == e_runs[-2:-4:-1]
        assert baseline.baseline_runs(store, "e", runs[-1] + 1, 10) == e_runs[::-1]
        assert baseline.baseline_runs(store, "e", runs[2], 10) == [runs[0]]
        assert baseline.baseline_runs(store, "e", runs[0], 10) == []
        assert baseline.baseline_runs(store, "none", runs[-1] + 1, 10) == []


def _history_rows_expected(store: Store, keep: int) -> dict[str, str]:
    """Each test's rolling-baseline row as encoding its last `keep` results in full gives it."""
    import json

    expected: dict[str, list[list[object]]] = {}
    for run, commit, dirty, outcome, call_ns, sig, nodeid, children in store.conn.execute(
        "SELECT h.run_id, r.commit_sha, r.dirty, h.outcome, h.call_ns, h.signature, h.nodeid,"
        " h.children FROM test_history h JOIN runs r ON r.id = h.run_id ORDER BY h.run_id DESC"
    ):
        kids = [json.loads(children)] if children != "{}" else []
        expected.setdefault(nodeid, []).append(
            [run, commit, bool(dirty), outcome, call_ns, sig, *kids]
        )
    return {nodeid: json.dumps(entries[:keep]) for nodeid, entries in expected.items()}


def test_rolling_baseline_rows_extended_as_text_are_the_encoded_history(tmp_path: Path) -> None:
    import json

    config = Config(root=tmp_path, store=tmp_path / "s.db", history=3)
    with Store.open(config.store) as store, Conductor(config, store_factory=lambda: store) as cond:
        for n in range(6):  # rows are extended, then also cut once past `history` runs
            outcome, sig = ("failed", "KeyError@app.py:get") if n % 2 else ("passed", "")
            test = _test_event("t.py::a", outcome, 5 + n, "a" * 16, sig)
            child = TelemetryEvent(
                EventSource.SPAN,
                "app",
                "db.query",
                2,
                10,
                span_id="c" * 16,
                trace_id="1" * 32,
                parent_span_id="a" * 16,
            )
            events = (child, test, _test_event("t.py::b", "passed", 5, "b" * 16))
            out = ingest(
                cond,
                TelemetryRequest(
                    events=events,
                    run_kind="test",
                    env_key="e",
                    commit=f"c{n}",
                    keep_raw=True,
                    hand_on=True,
                ),
            )
            detect_run(
                cond,
                DetectRequest(run_id=out.run_id, env_key="e", commit=f"c{n}", events=out.handed_on),
            )
            rows = dict(store.conn.execute("SELECT nodeid, history FROM test_baseline"))
            assert rows == _history_rows_expected(store, 3)
    assert json.loads(rows["t.py::a"])[0][6] == {"db.query": 1}
    assert [e[3] for e in json.loads(rows["t.py::a"])] == ["failed", "passed", "failed"]


def test_history_queries_search_an_index(tmp_path: Path) -> None:
    from agent.phases.anomaly import baseline

    with Store.open(tmp_path / "s.db") as store:
        run = _run_with_one_history_row(store)
        req = DetectRequest(run_id=run + 1, env_key="e", commit="c2")
        statements: list[str] = []
        store.conn.set_trace_callback(statements.append)  # the SQL as run, values filled in
        _, history = baseline.load_history(store, "e", run + 1, 20)
        baseline.fill_failing(store, req, [obs("t.py::b", "failed")], history, 20)
        store.conn.set_trace_callback(None)
        # Every green run reads these; a full scan of the history would grow with every run.
        assert len(statements) == 4  # runs, rolling baseline, its fallback, failing tests
        for sql in statements:
            plan = [r[3] for r in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            scans = [p for p in plan if p.startswith("SCAN") and p != "SCAN earlier"]
            assert not scans and any(p.startswith("SEARCH") for p in plan), (sql, plan)


def test_a_baseline_read_ahead_is_used_only_while_the_store_is_unchanged(tmp_path: Path) -> None:
    """The plugin's sidecar reads the baseline while the tests run; a write by anyone else in
    the meantime (another session of the same project) makes detection read it again."""
    from agent.phases.anomaly import baseline

    insert = "INSERT OR REPLACE INTO test_baseline VALUES ('e', 't.py::a', ?, ?)"
    with Store.open(tmp_path / "s.db") as store:
        run = _run_with_one_history_row(store)
        store.conn.execute(insert, (run, json.dumps([[run, "c1", False, "passed", 7, ""]])))
        store.conn.commit()
        ahead = baseline.read_ahead(store, "e")
        statements: list[str] = []
        store.conn.set_trace_callback(statements.append)
        _, history = baseline.load_history(store, "e", run + 5, 20, ahead=ahead)
        assert history["t.py::a"][0].call_ns == 7
        assert not [s for s in statements if "test_baseline" in s]  # taken from the read-ahead
        with Store.open(tmp_path / "s.db") as other:  # another session records a run
            later = [[run + 1, "c2", False, "passed", 9, ""], [run, "c1", False, "passed", 7, ""]]
            other.conn.execute(insert, (run + 1, json.dumps(later)))
            other.conn.commit()
        _, history = baseline.load_history(store, "e", run + 5, 20, ahead=ahead)
        store.conn.set_trace_callback(None)
        assert [p.call_ns for p in history["t.py::a"]] == [9, 7]


def test_a_traced_duration_is_judged_against_the_tests_own_usual_spread() -> None:
    """Two traced durations say little about a test's spread; its untraced record says more."""
    untraced = [past(call_ms=ms) for ms in (20, 60, 35, 45, 25, 50, 30)]  # median 35, wide
    traced = [past(run_id=2)._replace(call_ns=stored_call_ns(70 * MS, timed=False))] * 2
    history = {"t.py::test_a": untraced + traced}  # tracing: 2x for this test
    assert performance.screen([obs(call_ms=100)], history, CONFIG, timed=False) == []
    (suspect,) = performance.screen([obs(call_ms=200)], history, CONFIG, timed=False)
    assert suspect.nodeid == "t.py::test_a"


def test_a_traced_run_needs_a_duration_above_every_untraced_one() -> None:
    """Heavy tails: a test that once took twice its median is no suspect at 1.6x under tracing."""
    untraced = [past(call_ms=ms) for ms in (20, 21, 20, 22, 40, 21, 20, 21)]  # one slow run
    traced = [past(run_id=2)._replace(call_ns=stored_call_ns(42 * MS, timed=False))] * 3
    history = {"t.py::test_a": untraced + traced}  # tracing: 2x for this test
    assert performance.screen([obs(call_ms=68)], history, CONFIG, timed=False) == []
    assert len(performance.screen([obs(call_ms=34)], history, CONFIG)) == 1  # untraced: judged
    (suspect,) = performance.screen([obs(call_ms=90)], history, CONFIG, timed=False)
    assert suspect.nodeid == "t.py::test_a"
