"""Everything the insights table and the reports show, read from the store in one pass."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.phases.learning.assess import hotspots
from agent.phases.learning.model import StrategyStats, posterior_mean, strategy_stats
from agent.records import Anomaly, Deployment, DeploymentStatus, Diagnosis, EffectivenessData
from agent.store import Store

_OPEN = (DeploymentStatus.PROPOSED, DeploymentStatus.APPROVED)


@dataclass(frozen=True)
class RunAnomalies:
    run_id: int
    started_ns: int
    by_kind: dict[str, int]


@dataclass(frozen=True)
class HealedTiming:
    subject: str
    strategy: str
    before_ms: float
    after_ms: float


@dataclass(frozen=True)
class RatePoint:
    measured_ns: int
    strategy: str  # "kind/strategy"
    rate: float  # posterior mean after this outcome


@dataclass(frozen=True)
class ReportData:
    project: str
    generated_ns: int
    runs: tuple[RunAnomalies, ...] = ()
    strategies: tuple[StrategyStats, ...] = ()
    rates: tuple[RatePoint, ...] = ()
    timings: tuple[HealedTiming, ...] = ()
    open_proposals: tuple[Deployment, ...] = ()
    deployments_by_status: dict[str, int] = field(default_factory=dict)
    fixes: tuple[EffectivenessData, ...] = ()
    hotspots: tuple[tuple[str, int], ...] = ()
    anomaly_total: int = 0
    median_heal_ns: int | None = None

    def to_json(self) -> dict[str, Any]:
        from agent.records import to_json

        return {
            "project": self.project,
            "generated_ns": self.generated_ns,
            "anomaly_total": self.anomaly_total,
            "median_time_to_heal_s": None
            if self.median_heal_ns is None
            else self.median_heal_ns / 1e9,
            "runs": [
                {"run_id": r.run_id, "started_ns": r.started_ns, "anomalies": r.by_kind}
                for r in self.runs
            ],
            "strategies": [
                {
                    "anomaly_kind": s.anomaly_kind,
                    "strategy": s.strategy,
                    "successes": s.successes,
                    "failures": s.failures,
                    "expected_success": s.mean,
                }
                for s in self.strategies
            ],
            "strategy_rates": [
                {"measured_ns": p.measured_ns, "strategy": p.strategy, "rate": p.rate}
                for p in self.rates
            ],
            "healed_timings": [
                {
                    "subject": t.subject,
                    "strategy": t.strategy,
                    "before_ms": t.before_ms,
                    "after_ms": t.after_ms,
                }
                for t in self.timings
            ],
            "open_proposals": [to_json(d) for d in self.open_proposals],
            "deployments_by_status": self.deployments_by_status,
            "fixes": [to_json(f) for f in self.fixes],
            "hotspots": [{"where": w, "runs": n} for w, n in self.hotspots],
        }


def _runs(store: Store, anomalies: list[Anomaly]) -> tuple[RunAnomalies, ...]:
    per_run: dict[int, Counter[str]] = defaultdict(Counter)
    for a in anomalies:
        per_run[a.run_id][a.kind.value] += 1
    # Green test runs count too (with zero anomalies): they are what "healed" looks like.
    rows = store.conn.execute(
        "SELECT id, started_ns FROM runs WHERE kind = 'test' ORDER BY id DESC LIMIT 60"
    ).fetchall()
    started = {int(r[0]): int(r[1]) for r in rows}
    for run_id in per_run:
        if run_id not in started:
            row = store.conn.execute(
                "SELECT started_ns FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            started[run_id] = int(row[0]) if row else 0
    return tuple(RunAnomalies(r, started[r], dict(per_run.get(r, {}))) for r in sorted(started))


def _rates(fixes: list[EffectivenessData]) -> tuple[RatePoint, ...]:
    """The posterior of each (kind, strategy) replayed over its counted outcomes in time order."""
    tally: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    points = []
    for f in sorted(fixes, key=lambda f: f.measured_ns):
        if not f.counted or f.outcome == "pending":
            continue
        key = f"{f.anomaly_kind.value}/{f.strategy}"
        tally[key][0 if f.success else 1] += 1
        points.append(RatePoint(f.measured_ns, key, posterior_mean(*tally[key])))
    return tuple(points)


def _open(deployments: list[Deployment], applied: set[str]) -> tuple[Deployment, ...]:
    latest: dict[str, Deployment] = {}
    for d in deployments:  # newest first
        latest.setdefault(d.patch_id, d)
    return tuple(d for d in latest.values() if d.status in _OPEN and d.patch_id not in applied)


def collect(store: Store, project: str, now_ns: int, repo: Path | None = None) -> ReportData:
    """Read the report's data; with `repo`, a proposal whose branch was deleted is closed."""
    anomalies = store.find(Anomaly, limit=5000)
    fixes = store.find(EffectivenessData, limit=2000)
    deployments = store.find(Deployment, limit=2000)
    applied = {f.patch_id for f in fixes if f.applied_commit}
    heal = [f.time_to_heal_ns for f in fixes if f.time_to_heal_ns > 0]
    subjects = {a.id: a.subject for a in anomalies}
    timings = tuple(
        HealedTiming(
            subjects.get(f.anomaly_id, f.anomaly_id),
            f.strategy,
            f.before["duration_ms"],
            f.after["duration_ms"],
        )
        for f in fixes
        if "duration_ms" in f.before and "duration_ms" in f.after
    )
    return ReportData(
        project=project,
        generated_ns=now_ns,
        runs=_runs(store, anomalies),
        strategies=tuple(strategy_stats(store)),
        rates=_rates(fixes),
        timings=timings,
        open_proposals=_still_open(_open(deployments, applied), repo),
        deployments_by_status=_statuses(deployments, applied),
        fixes=tuple(fixes),
        hotspots=tuple(hotspots(anomalies, store.find(Diagnosis, limit=5000))),
        anomaly_total=len(anomalies),
        median_heal_ns=int(statistics.median(heal)) if heal else None,
    )


def _latest(deployments: list[Deployment]) -> list[Deployment]:
    seen: dict[str, Deployment] = {}
    for d in deployments:
        seen.setdefault(d.patch_id, d)
    return list(seen.values())


def _statuses(deployments: list[Deployment], applied: set[str]) -> dict[str, int]:
    """The latest status of each delivered patch; a proposal git shows applied is `applied`."""
    return dict(
        Counter(
            "applied" if d.patch_id in applied else d.status.value for d in _latest(deployments)
        )
    )


def _still_open(proposals: tuple[Deployment, ...], repo: Path | None) -> tuple[Deployment, ...]:
    if repo is None or not proposals:
        return proposals
    from agent import git

    out = git.run_git(
        repo, "branch", "--list", "selfheal/*", "--format=%(refname:short)", check=False
    )
    branches = set(out.split())
    return tuple(d for d in proposals if not d.branch or d.branch in branches)
