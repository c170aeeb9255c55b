"""Coverage gaps: changed lines no test runs, and drops in total line coverage."""

from __future__ import annotations

from agent.config import Config
from agent.phases.anomaly.common import anomaly_id, line_ranges
from agent.phases.anomaly.model import AnomalyBaton
from agent.records import Anomaly, AnomalyKind, CodeLocation, Severity

DROP_POINTS = 1.0  # total coverage must fall by at least this many percentage points
MANY_LINES = 10


def detect_uncovered_changes(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    req = baton.request
    found = []
    for file, lines in sorted(baton.coverage.uncovered_changed.items()):
        if not lines:
            continue
        found.append(
            Anomaly(
                id=anomaly_id(req.run_id, AnomalyKind.COVERAGE, "uncovered_change", file),
                kind=AnomalyKind.COVERAGE,
                subtype="uncovered_change",
                severity=Severity.MEDIUM if len(lines) >= MANY_LINES else Severity.LOW,
                confidence=0.9,
                subject=file,
                description=(
                    f"{file}: {len(lines)} changed line(s) no test runs ({line_ranges(lines)})"
                ),
                detected_ns=req.detected_ns,
                run_id=req.run_id,
                commit=req.commit,
                baseline_commit=baton.baseline_commit,
                location=CodeLocation(file=file, line=min(lines)),
                evidence={
                    "uncovered_lines": len(lines),
                    "lines": line_ranges(lines),
                    "changed_statements": baton.coverage.changed_statements,
                    "map_commit": baton.coverage.map_commit,
                },
            )
        )
    return found


def detect_coverage_drop(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    cov = baton.coverage
    if cov.total_now is None or cov.total_before is None:
        return []
    drop = cov.total_before - cov.total_now
    if drop < DROP_POINTS:
        return []
    req = baton.request
    return [
        Anomaly(
            id=anomaly_id(req.run_id, AnomalyKind.COVERAGE, "coverage_drop", "total"),
            kind=AnomalyKind.COVERAGE,
            subtype="coverage_drop",
            severity=Severity.HIGH if drop >= 5 else Severity.MEDIUM,
            confidence=0.95,
            subject="total",
            description=(
                f"line coverage fell {drop:.1f} points: {cov.total_now:.1f}% "
                f"(was {cov.total_before:.1f}% at {cov.before_commit[:10]})"
            ),
            detected_ns=req.detected_ns,
            run_id=req.run_id,
            commit=req.commit,
            baseline_commit=cov.before_commit,
            evidence={
                "total_now": round(cov.total_now, 3),
                "total_before": round(cov.total_before, 3),
                "drop_points": round(drop, 3),
            },
        )
    ]
