"""The 10 beats of learning.track: which fixes landed, did they hold, what that teaches."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.conductor import BeatContext
from agent.errors import ConfigError
from agent.handlers import HandlerSet
from agent.phases.learning import assess, observe
from agent.phases.learning.applied import Applied, History
from agent.phases.learning.model import StrategyStats, record_outcome, strategy_stats
from agent.records import (
    Anomaly,
    AnomalyKind,
    Deployment,
    DeploymentStatus,
    Diagnosis,
    EffectivenessData,
    Patch,
)
from agent.store import Store

HANDLERS = HandlerSet("learning")

DAY_NS = 86_400 * 10**9
_NOT_DELIVERED = (DeploymentStatus.REJECTED,)


@dataclass(frozen=True)
class TrackRequest:
    head: str = "HEAD"  # the history to look for applied fixes in
    since_ns: int = 0  # only patches made after this time
    limit: int = 500  # patches looked at, newest first


@dataclass(frozen=True)
class Case:
    """One patch that git shows applied, followed from its anomaly to its later runs."""

    patch: Patch
    anomaly: Anomaly
    applied: Applied
    deployment: Deployment | None = None
    previous: EffectivenessData | None = None
    before: tuple[observe.Sample, ...] = ()
    baseline: tuple[observe.Sample, ...] = ()  # green runs before the anomaly
    after: tuple[observe.Sample, ...] = ()
    before_metrics: dict[str, float] = field(default_factory=dict)
    after_metrics: dict[str, float] = field(default_factory=dict)
    improvement: tuple[float, float, float] = (0.0, 0.0, 0.0)
    verdict: assess.Verdict | None = None
    count_now: bool = False  # this run adds the outcome to the model

    @property
    def key(self) -> tuple[AnomalyKind, str]:
        return self.anomaly.kind, self.patch.strategy


@dataclass(frozen=True)
class TrackBaton:
    request: TrackRequest
    repo: Path = Path(".")
    cases: tuple[Case, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()
    diagnoses: tuple[Diagnosis, ...] = ()
    stats: tuple[StrategyStats, ...] = ()
    hotspots: tuple[tuple[str, int], ...] = ()
    insights: tuple[str, ...] = ()
    records: tuple[EffectivenessData, ...] = ()


def _cases(baton: TrackBaton, fn: Callable[[Case], Case]) -> tuple[Case, ...]:
    return tuple(fn(c) for c in baton.cases)


# 1 -------------------------------------------------------------------------------------
@HANDLERS.beat("trackRequested", "pure")
def track_requested(baton: TrackBaton, ctx: BeatContext) -> TrackBaton:
    """Check the request and fix the repository it is about."""
    req = baton.request
    if req.limit <= 0 or req.since_ns < 0 or not req.head:
        raise ConfigError(f"learning request: bad limit/since/head in {req}")
    return dataclasses.replace(baton, repo=ctx.config.root)


# 2 -------------------------------------------------------------------------------------
def _candidates(store: Store, req: TrackRequest) -> list[tuple[Patch, Deployment | None]]:
    deployments: dict[str, Deployment] = {}
    for d in reversed(store.find(Deployment, limit=req.limit * 4)):  # oldest first: newest wins
        deployments[d.patch_id] = d
    # Only the ids are needed: read them in SQL rather than decoding every result.
    passed = {
        str(row[0])
        for row in store.conn.execute(
            "SELECT json_extract(payload, '$.patch_id') FROM records"
            " WHERE kind = 'ValidationResult' AND json_extract(payload, '$.passed')"
        )
    }
    out = []
    for patch in store.find(Patch, limit=req.limit):
        dep = deployments.get(patch.id)
        wanted = patch.id in passed or (dep is not None and dep.status not in _NOT_DELIVERED)
        if wanted and patch.created_ns >= req.since_ns:
            out.append((patch, dep))
    return out


def _applied(
    history: History, patch: Patch, dep: Deployment | None, previous: EffectivenessData | None
) -> Applied | None:
    # Found before: only ask whether it is still there (cheap: one `git apply --check`).
    known = previous.applied_commit if previous is not None else ""
    if known and history.contains(known):
        present = history.at_head(patch.diff)
        return Applied(patch.id, known, history.commit_ns(known), "known", present)
    found = history.find(patch.id, patch.diff, patch.base_commit)
    if found is None and dep is not None and dep.status is DeploymentStatus.REVERTED:
        # Our merge was reverted by verification: it landed and did not hold.
        return Applied(patch.id, dep.commit, dep.created_ns, "merge", present=False)
    return found


@HANDLERS.beat("loadDeploymentInfo", "stage-crew")
def load_deployment_info(baton: TrackBaton, ctx: BeatContext) -> TrackBaton:
    """Delivered or validated patches, their anomalies, and where git shows them applied."""
    store = ctx.store
    cases = []
    candidates = _candidates(store, baton.request)
    oldest = min((patch.created_ns for patch, _ in candidates), default=0)
    with History(baton.repo, baton.request.head, oldest) as history:
        history.prepare([patch.diff for patch, _ in candidates])
        history.prepare_presence([patch.diff for patch, _ in candidates])
        for patch, dep in candidates:
            previous = store.get(f"eff-{patch.id}", EffectivenessData)
            if previous is not None and previous.outcome == assess.FAILURE and previous.counted:
                continue  # a failure is final; a success is re-checked (it may be reverted)
            anomaly = store.get(patch.anomaly_id, Anomaly)
            if anomaly is not None:
                applied = _applied(history, patch, dep, previous)
                if applied is not None:
                    cases.append(Case(patch, anomaly, applied, dep, previous))
    # Hotspots need every anomaly; only worth reading when there is something to learn from.
    anomalies = tuple(store.find(Anomaly, limit=5000)) if cases else ()
    diagnoses = tuple(store.find(Diagnosis, limit=5000)) if cases else ()
    return dataclasses.replace(
        baton,
        cases=tuple(cases),
        anomalies=anomalies,
        diagnoses=diagnoses,
        stats=tuple(strategy_stats(store)),
    )


# 3 -------------------------------------------------------------------------------------
def _collect(store: Store, repo: Path, case: Case) -> Case:
    a, applied = case.anomaly, case.applied
    tests = observe.subject_tests(store, a)
    if tests:
        before = observe.run_sample(store, a.run_id, tests) if a.run_id else None
        baseline = tuple(observe.runs_before(store, tests, a.run_id)) if a.run_id else ()
        after = observe.runs_after(store, repo, tests, a.run_id, applied.commit)
        return dataclasses.replace(
            case, before=(before,) if before else (), baseline=baseline, after=tuple(after)
        )
    start = a.detected_ns - DAY_NS
    before_t = observe.telemetry_samples(store, a.subject, start, applied.applied_ns)
    after_t = observe.telemetry_samples(store, a.subject, applied.applied_ns)
    return dataclasses.replace(case, before=tuple(before_t), after=tuple(after_t))


@HANDLERS.beat("collectPostDeploymentMetrics", "stage-crew")
def collect_post_deployment_metrics(baton: TrackBaton, ctx: BeatContext) -> TrackBaton:
    """For each applied fix: the detecting run, its baseline, and every later run with the fix."""
    store = ctx.store
    return dataclasses.replace(
        baton, cases=tuple(_collect(store, baton.repo, c) for c in baton.cases)
    )


# 4 -------------------------------------------------------------------------------------
@HANDLERS.beat("compareMetrics", "pure")
def compare_metrics(baton: TrackBaton, ctx: BeatContext) -> TrackBaton:
    """Before vs after: median timing, failure rate, failing tests, coverage, error rate."""

    def one(c: Case) -> Case:
        b, a = assess.compare(c.before, c.baseline, c.after)
        return dataclasses.replace(c, before_metrics=b, after_metrics=a)

    return dataclasses.replace(baton, cases=_cases(baton, one))


# 5 -------------------------------------------------------------------------------------
@HANDLERS.beat("calculateImprovement", "pure")
def calculate_improvement(baton: TrackBaton, ctx: BeatContext) -> TrackBaton:
    """Timing, error-rate and coverage improvement of each fix."""

    def one(c: Case) -> Case:
        return dataclasses.replace(
            c, improvement=assess.improvement(c.before_metrics, c.after_metrics)
        )

    return dataclasses.replace(baton, cases=_cases(baton, one))


# 6 -------------------------------------------------------------------------------------
@HANDLERS.beat("assessSuccess", "pure")
def assess_success(baton: TrackBaton, ctx: BeatContext) -> TrackBaton:
    """Success: the anomaly is gone in later runs and nothing that passed before fails now."""
    ratio, floor = ctx.config.perf_ratio, ctx.config.perf_floor_ms

    def one(c: Case) -> Case:
        verdict = assess.assess(
            c.anomaly,
            c.before,
            c.before_metrics,
            c.after,
            present=c.applied.present,
            perf_ratio=ratio,
            floor_ms=floor,
        )
        return dataclasses.replace(c, verdict=verdict)

    return dataclasses.replace(baton, cases=_cases(baton, one))


# 7 -------------------------------------------------------------------------------------
def _due(c: Case) -> bool:
    """Count an outcome once; a counted success that later fails counts again as a failure."""
    if c.verdict is None or c.verdict.outcome == assess.PENDING:
        return False
    if c.previous is None or not c.previous.counted:
        return True
    return c.previous.outcome == assess.SUCCESS and c.verdict.outcome == assess.FAILURE


@HANDLERS.beat("updateLearningModels", "pure")
def update_learning_models(baton: TrackBaton, ctx: BeatContext) -> TrackBaton:
    """Fold this run's outcomes into the per (kind, strategy) posterior; find hotspots."""
    cases = tuple(dataclasses.replace(c, count_now=_due(c)) for c in baton.cases)
    table = {(s.anomaly_kind, s.strategy): s for s in baton.stats}
    for c in cases:
        if not c.count_now:
            continue
        assert c.verdict is not None
        key = (c.anomaly.kind.value, c.patch.strategy)
        old = table.get(key, StrategyStats(key[0], key[1], 0.0, 0.0))
        won = c.verdict.outcome == assess.SUCCESS
        table[key] = dataclasses.replace(
            old, successes=old.successes + won, failures=old.failures + (not won)
        )
    stats = tuple(sorted(table.values(), key=lambda r: (-r.mean, r.anomaly_kind, r.strategy)))
    spots = tuple(assess.hotspots(baton.anomalies, baton.diagnoses))
    return dataclasses.replace(baton, cases=cases, stats=stats, hotspots=spots)


# 8 -------------------------------------------------------------------------------------
def _time_to_heal(c: Case) -> int:
    if c.verdict is None or not c.verdict.healed_ns:
        return 0
    return max(0, c.verdict.healed_ns - c.anomaly.detected_ns)


def _case_line(c: Case) -> str:
    assert c.verdict is not None
    b, a = c.before_metrics, c.after_metrics
    parts = [
        f"{c.patch.strategy} fix for {c.anomaly.subject} ({c.applied.how} at "
        f"{c.applied.commit[:10]}): {c.verdict.outcome}"
    ]
    if "duration_ms" in b and "duration_ms" in a:
        parts.append(f"{b['duration_ms']:.1f} -> {a['duration_ms']:.1f} ms")
    if heal := _time_to_heal(c):
        parts.append(f"healed in {heal / 60e9:.1f} min")
    return ", ".join(parts) + f" [{'; '.join(c.verdict.reasons)}]"


@HANDLERS.beat("generateInsights", "pure")
def generate_insights(baton: TrackBaton, ctx: BeatContext) -> TrackBaton:
    """Per fix what happened; overall what works, what keeps regressing, time to heal."""
    heal = [t for c in baton.cases if (t := _time_to_heal(c))]
    lines = [_case_line(c) for c in baton.cases]
    lines += assess.insight_lines(baton.stats, baton.hotspots, heal)
    return dataclasses.replace(baton, insights=tuple(lines))


# 9 -------------------------------------------------------------------------------------
def _record(c: Case, now: int) -> EffectivenessData:
    assert c.verdict is not None
    perf, err, cov = c.improvement
    counted = c.count_now or bool(c.previous and c.previous.counted)
    return EffectivenessData(
        id=f"eff-{c.patch.id}",
        deployment_id=c.deployment.id if c.deployment else "",
        anomaly_id=c.anomaly.id,
        anomaly_kind=c.anomaly.kind,
        strategy=c.patch.strategy,
        measured_ns=now,
        before=c.before_metrics,
        after=c.after_metrics,
        performance_improvement=perf,
        error_improvement=err,
        coverage_improvement=cov,
        success=c.verdict.outcome == assess.SUCCESS,
        time_to_heal_ns=_time_to_heal(c),
        insights=c.verdict.reasons,
        patch_id=c.patch.id,
        applied_commit=c.applied.commit,
        runs_after=len(c.after),
        outcome=c.verdict.outcome,
        counted=counted,
    )


@HANDLERS.beat("storeEffectiveness", "stage-crew")
def store_effectiveness(baton: TrackBaton, ctx: BeatContext) -> TrackBaton:
    """Persist each fix's EffectivenessData and add the due outcomes to the model."""
    store, now = ctx.store, time.time_ns()
    records = []
    for c in baton.cases:
        record = _record(c, now)
        if c.count_now:
            record_outcome(store, c.anomaly.kind, c.patch.strategy, record.success)
        store.put(record, subject=c.anomaly.subject)
        records.append(record)
    return dataclasses.replace(baton, records=tuple(records))


# 10 ------------------------------------------------------------------------------------
@HANDLERS.beat("trackCompleted", "pure")
def track_completed(baton: TrackBaton, ctx: BeatContext) -> TrackBaton:
    """Report the learning record in a few lines."""
    if not baton.records:
        return baton  # nothing landed yet: a green run stays quiet
    done = sum(r.outcome != assess.PENDING for r in baton.records)
    ctx.progress(f"selfheal: learning: {len(baton.records)} applied fixes tracked, {done} judged")
    for line in baton.insights:
        ctx.progress(f"selfheal:   {line}")
    return baton
