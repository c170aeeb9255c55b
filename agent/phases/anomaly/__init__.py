"""Phase 2, anomaly.detect: compare a recorded run with its comparable history."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from agent.config import Config
from agent.handlers import HandlerSet
from agent.phases.anomaly import baseline, behavioral, errors, gaps, gather, performance
from agent.phases.anomaly import production as prod
from agent.phases.anomaly.common import Detector
from agent.phases.anomaly.model import AnomalyBaton, DetectRequest, RerunSpec
from agent.phases.anomaly.production_data import load_production
from agent.records import Anomaly

if TYPE_CHECKING:
    from agent.conductor import BeatContext, Conductor

__all__ = [
    "DETECTORS",
    "HANDLERS",
    "LOADERS",
    "AnomalyBaton",
    "DetectRequest",
    "RerunSpec",
    "detect",
    "detect_run",
]

HANDLERS = HandlerSet("anomaly")
SEQUENCE = "anomaly.detect"

# Each beat runs every function of its list, so another detector family (production
# telemetry, a third-party package) plugs in by appending to these lists.
LOADERS: list[gather.Loader] = [gather.load_test_run, gather.confirm_by_rerun, gather.load_coverage]
LOADERS.append(load_production)  # app spans in the run: production regressions
DETECTORS: dict[str, list[Detector]] = {
    "performance": [performance.detect_slowdowns],
    "behavioral": [behavioral.detect_call_changes, behavioral.detect_order_dependence],
    "coverage": [gaps.detect_uncovered_changes, gaps.detect_coverage_drop],
    "errors": [errors.detect_new_failures, errors.detect_flaky, errors.detect_new_signatures],
}
DETECTORS["performance"].append(prod.detect_latency)
DETECTORS["behavioral"].append(prod.detect_call_changes)
DETECTORS["coverage"].append(prod.detect_untested_hot_code)
DETECTORS["errors"].append(prod.detect_error_changes)


def detect(conductor: Conductor, request: DetectRequest) -> tuple[Anomaly, ...]:
    """Play anomaly.detect on one stored run; returns the anomalies, most severe first."""
    return detect_run(conductor, request).anomalies


def detect_run(conductor: Conductor, request: DetectRequest) -> AnomalyBaton:
    """Like `detect`, returning the whole final baton (history sizes, notes) for summaries."""
    baton: AnomalyBaton = conductor.play(SEQUENCE, AnomalyBaton(request=request))
    return baton


@HANDLERS.beat("detectAnomaliesRequested", "pure")
def detect_anomalies_requested(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    req = baton.request
    if req.run_id <= 0:
        raise ValueError(f"anomaly.detect needs a stored run id, got {req.run_id}")
    if req.detected_ns:
        return baton
    return dataclasses.replace(baton, request=dataclasses.replace(req, detected_ns=time.time_ns()))


@HANDLERS.beat("loadTelemetryData", "stage-crew")
def load_telemetry_data(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    for loader in LOADERS:
        baton = loader(baton, ctx)
    return baton


def _run_family(family: str, baton: AnomalyBaton, config: Config) -> AnomalyBaton:
    found: list[Anomaly] = []
    for detector in DETECTORS[family]:
        found.extend(detector(baton, config))
    return dataclasses.replace(baton, found=baton.found + tuple(found))


@HANDLERS.beat("detectPerformanceAnomalies", "pure")
def detect_performance_anomalies(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    return _run_family("performance", baton, ctx.config)


@HANDLERS.beat("detectBehavioralAnomalies", "pure")
def detect_behavioral_anomalies(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    return _run_family("behavioral", baton, ctx.config)


@HANDLERS.beat("detectCoverageGaps", "pure")
def detect_coverage_gaps(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    return _run_family("coverage", baton, ctx.config)


@HANDLERS.beat("detectErrorPatterns", "pure")
def detect_error_patterns(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    return _run_family("errors", baton, ctx.config)


def aggregate(found: tuple[Anomaly, ...]) -> tuple[Anomaly, ...]:
    """One anomaly per id (the strongest), most severe first, then most confident."""
    best: dict[str, Anomaly] = {}
    for anomaly in found:
        kept = best.get(anomaly.id)
        if kept is None or (anomaly.severity.rank, anomaly.confidence) > (
            kept.severity.rank,
            kept.confidence,
        ):
            best[anomaly.id] = anomaly
    return tuple(
        sorted(
            best.values(), key=lambda a: (-a.severity.rank, -a.confidence, a.kind.value, a.subject)
        )
    )


@HANDLERS.beat("aggregateAnomalyResults", "pure")
def aggregate_anomaly_results(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    return dataclasses.replace(baton, anomalies=aggregate(baton.found))


@HANDLERS.beat("storeAnomalyResults", "stage-crew")
def store_anomaly_results(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    store = ctx.store
    req = baton.request
    for anomaly in baton.anomalies:
        store.put(anomaly, run_id=req.run_id, subject=anomaly.subject)
    if baton.current:
        baseline.save_history(store, req.run_id, req.env_key, baton.current, timed=req.timed)
        baseline.save_baseline(
            store,
            req,
            baton.current,
            baton.history,
            ctx.config.history,
            rows_read=baton.baseline_rows,
        )
    return dataclasses.replace(baton, stored=len(baton.anomalies))


@HANDLERS.beat("detectAnomaliesCompleted", "pure")
def detect_anomalies_completed(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    if baton.stored != len(baton.anomalies):
        raise RuntimeError(f"{len(baton.anomalies)} anomalies found but {baton.stored} stored")
    kinds: dict[str, int] = {}
    for anomaly in baton.anomalies:
        kinds[anomaly.kind.value] = kinds.get(anomaly.kind.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no anomalies"
    ctx.progress(f"anomaly.detect: {summary} in {len(baton.current)} tests")
    return baton
