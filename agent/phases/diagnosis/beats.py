"""The eleven beats of diagnosis.analyze, on one frozen baton."""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from agent import git, snapshot
from agent.conductor import BeatContext
from agent.errors import GitError
from agent.handlers import HandlerSet
from agent.phases.diagnosis import analysis, codebase
from agent.phases.diagnosis.bisect import Verdict
from agent.phases.diagnosis.codebase import CodebaseInfo
from agent.phases.diagnosis.ochiai import RankedLine
from agent.phases.diagnosis.recommend import Learned, recommend
from agent.records import (
    Anomaly,
    AnomalyKind,
    CodeLocation,
    Diagnosis,
    FixRecommendation,
    Impact,
    RootCause,
)
from agent.store import Store

HANDLERS = HandlerSet("diagnosis")
TOP_LINES = 10


@dataclass(frozen=True)
class DiagnosisBaton:
    anomaly_id: str = ""
    anomaly: Anomaly | None = None
    started_ns: int = 0
    learned: Learned = field(default_factory=dict)
    codebase: CodebaseInfo | None = None
    ranked: tuple[RankedLine, ...] = ()
    frame: CodeLocation = field(default_factory=CodeLocation)
    causes: tuple[RootCause, ...] = ()
    affected: tuple[CodeLocation, ...] = ()
    impact: Impact = field(default_factory=Impact)
    recommendations: tuple[FixRecommendation, ...] = ()
    diagnosis: Diagnosis | None = None
    notes: tuple[str, ...] = ()


def _anomaly(baton: DiagnosisBaton) -> Anomaly:
    if baton.anomaly is None:
        raise ValueError("no anomaly on the baton (loadAnomalies did not run?)")
    return baton.anomaly


@HANDLERS.beat("analyzeRequested", "pure")
def analyze_requested(baton: DiagnosisBaton, ctx: BeatContext) -> DiagnosisBaton:
    if baton.anomaly is None and not baton.anomaly_id:
        raise ValueError("diagnosis needs an anomaly or an anomaly id")
    anomaly_id = baton.anomaly.id if baton.anomaly is not None else baton.anomaly_id
    return dataclasses.replace(baton, anomaly_id=anomaly_id, started_ns=time.time_ns())


@HANDLERS.beat("loadAnomalies", "stage-crew")
def load_anomalies(baton: DiagnosisBaton, ctx: BeatContext) -> DiagnosisBaton:
    anomaly = baton.anomaly or ctx.store.get(baton.anomaly_id, Anomaly)
    if anomaly is None:
        raise ValueError(f"anomaly {baton.anomaly_id!r} is not in the store {ctx.store.path}")
    return dataclasses.replace(baton, anomaly=anomaly, learned=load_learned(ctx.store, anomaly))


def load_learned(store: Store, anomaly: Anomaly) -> dict[str, tuple[float, float]]:
    """(successes, failures) per strategy for this anomaly kind, from the `learning` table."""
    from agent.phases.learning.model import strategy_stats

    return {
        row.strategy: (row.successes, row.failures) for row in strategy_stats(store, anomaly.kind)
    }


@HANDLERS.beat("loadCodebaseInfo", "stage-crew")
def load_codebase_info(baton: DiagnosisBaton, ctx: BeatContext) -> DiagnosisBaton:
    anomaly = _anomaly(baton)
    repo = git.toplevel(ctx.config.root)
    if repo is None:
        raise GitError(f"{ctx.config.root}: not a git repository; diagnosis needs one")
    # Uncommitted edits are what the developer runs: a snapshot commit of them (parent HEAD)
    # is the base of diagnosis, fixes and the gate, so patches apply to the working tree.
    state = snapshot.working_state(repo)
    head = state.commit
    if state.uncommitted:
        ctx.progress(f"diagnosis: uncommitted changes, snapshot {head[:12]} on HEAD")
    with codebase.scratch_worktree(repo, head, "diagnosis") as wt:
        info = _collect(repo, wt, head, anomaly, ctx, state=state)
    return dataclasses.replace(baton, codebase=info, notes=baton.notes + info.notes)


def _baseline(
    wt: Path, anomaly: Anomaly, state: snapshot.WorkingState, ctx: BeatContext
) -> tuple[str, str]:
    """The anomaly's baseline commit; without one, HEAD when the anomaly's tests pass there
    (the failure then comes from the uncommitted changes). Also a note on what was decided."""
    if anomaly.baseline_commit or not state.uncommitted or not anomaly.tests:
        return anomaly.baseline_commit, ""
    timeout = max(5.0, min(60.0, ctx.remaining() / 6))
    codebase.checkout(wt, state.head)
    try:
        verdict = codebase.failure_check(wt, anomaly.tests, timeout, 1)
    finally:
        codebase.checkout(wt, state.commit)
    if verdict is Verdict.GOOD:
        return state.head, "the anomaly's tests pass at HEAD: the uncommitted changes broke them"
    return "", ""


def _collect(
    repo: Path,
    wt: Path,
    head: str,
    anomaly: Anomaly,
    ctx: BeatContext,
    *,
    state: snapshot.WorkingState,
) -> CodebaseInfo:
    notes: list[str] = []
    if state.uncommitted:
        notes.append(f"diagnosed the uncommitted working state (snapshot {head[:12]} on HEAD)")
    baseline, why = _baseline(wt, anomaly, state, ctx)
    if why:
        notes.append(why)
    ctx.progress(f"diagnosis: per-test coverage of {len(anomaly.tests)} test(s) and neighbours")
    sharing = codebase.sharing_tests(ctx.store, anomaly.tests)
    run = codebase.collect_coverage(
        wt, anomaly.tests, timeout_s=min(120.0, ctx.remaining()), sharing=sharing
    )
    if not run.collected:
        notes.append(f"coverage run did not complete (pytest exit {run.returncode})")
    sources = codebase.read_sources(wt, run.coverage)
    info = CodebaseInfo(
        str(repo),
        head,
        baseline,
        codebase.history(repo, baseline, head),
        run.tests,
        run.coverage,
        sources,
        codebase.index(sources),
    )
    if anomaly.kind is AnomalyKind.PERFORMANCE and info.baseline and anomaly.tests:
        info = _performance(wt, info, anomaly, ctx)
    if info.commits and anomaly.tests:
        info = _bisect(repo, wt, info, anomaly, ctx)
    elif not info.commits:
        notes.append("no baseline commit before HEAD: culprit search skipped")
    return dataclasses.replace(info, notes=info.notes + tuple(notes))


def _performance(wt: Path, info: CodebaseInfo, anomaly: Anomaly, ctx: BeatContext) -> CodebaseInfo:
    ctx.progress("diagnosis: timing and profiling the slow test at the baseline and at HEAD")
    timeout = max(5.0, min(60.0, ctx.remaining() / 6))
    current = codebase.durations(wt, anomaly.tests, 3, timeout)
    prof_now = codebase.profile_tests(wt, anomaly.tests, timeout)
    try:
        codebase.checkout(wt, info.baseline)
    except GitError as exc:
        return dataclasses.replace(info, notes=(*info.notes, f"baseline checkout failed: {exc}"))
    base = codebase.durations(wt, anomaly.tests, 3, timeout)
    prof_base = codebase.profile_tests(wt, anomaly.tests, timeout)
    codebase.checkout(wt, info.head)
    return dataclasses.replace(
        info,
        profile_base=prof_base,
        profile_current=prof_now,
        durations_base_ns=tuple(base),
        durations_current_ns=tuple(current),
    )


def _bisect(
    repo: Path, wt: Path, info: CodebaseInfo, anomaly: Anomaly, ctx: BeatContext
) -> CodebaseInfo:
    threshold = 0.0
    if info.durations_base_ns and info.durations_current_ns:
        base = statistics.median(info.durations_base_ns)
        now = statistics.median(info.durations_current_ns)
        threshold = (base * now) ** 0.5  # geometric midpoint between good and bad timings
    ctx.progress(f"diagnosis: bisecting {len(info.commits)} commit(s) since the baseline")
    # Bisect gets at most 40% of what is left, so fixes still have time.
    deadline = time.monotonic() + max(5.0, 0.4 * ctx.remaining())
    result = codebase.run_bisect(repo, wt, anomaly, info.commits, deadline, threshold_ns=threshold)
    diff = codebase.show_commit(repo, result.culprit) if result.culprit else ""
    return dataclasses.replace(info, bisect=result, culprit_diff=diff)


@HANDLERS.beat("analyzePerformanceIssues", "pure")
def analyze_performance_issues(baton: DiagnosisBaton, ctx: BeatContext) -> DiagnosisBaton:
    info = baton.codebase
    if info is None or _anomaly(baton).kind is not AnomalyKind.PERFORMANCE:
        return baton
    causes = analysis.growth_causes(info)
    changed = analysis.culprit_lines(info.culprit_diff)
    on_path = [c for c in causes if any(f == c.location.file for f, _ in changed)]
    notes = baton.notes
    if info.profile_current and not causes:
        notes = (*notes, "profiles show no project function whose time grew")
    return dataclasses.replace(
        baton,
        causes=baton.causes + tuple(on_path or causes),
        affected=baton.affected + tuple(c.location for c in causes),
        notes=notes,
    )


@HANDLERS.beat("analyzeBehavioralIssues", "pure")
def analyze_behavioral_issues(baton: DiagnosisBaton, ctx: BeatContext) -> DiagnosisBaton:
    anomaly = _anomaly(baton)
    info = baton.codebase
    if info is None or anomaly.kind is not AnomalyKind.BEHAVIORAL:
        return baton
    names = {str(v).rsplit(".", 1)[-1] for v in anomaly.evidence.values() if isinstance(v, str)}
    names |= {anomaly.subject.rsplit("/", 1)[-1].rsplit(".", 1)[-1]}
    changed = analysis.culprit_lines(info.culprit_diff)
    causes = []
    for file, funcs in info.functions.items():
        for func in funcs:
            if func.qualname.rsplit(".", 1)[-1] not in names:
                continue
            touched = sorted(n for f, n in changed if f == file and func.contains(n))
            why = (
                f"{func.qualname} changed in {info.bisect.culprit[:10]}"
                if touched and (info.bisect)
                else f"{func.qualname} appears in the changed call structure"
            )
            loc = CodeLocation(file, func.qualname, touched[0] if touched else func.start)
            causes.append(RootCause(why, loc, 1.0 if touched else 0.5, {"kind": "call"}))
    causes.sort(key=lambda c: -c.score)
    return dataclasses.replace(
        baton,
        causes=baton.causes + tuple(causes),
        affected=baton.affected + tuple(c.location for c in causes),
    )


@HANDLERS.beat("analyzeCoverageIssues", "pure")
def analyze_coverage_issues(baton: DiagnosisBaton, ctx: BeatContext) -> DiagnosisBaton:
    anomaly = _anomaly(baton)
    info = baton.codebase
    if info is None or anomaly.kind is not AnomalyKind.COVERAGE:
        return baton
    uncovered = analysis.uncovered_functions(info)
    # Production use first: the anomaly's own subject, then functions by name order.
    hot = anomaly.location.function or anomaly.subject
    uncovered.sort(
        key=lambda loc: (
            hot.rsplit(".", 1)[-1] != loc.function.rsplit(".", 1)[-1],
            loc.file,
            loc.line,
        )
    )
    causes = [
        RootCause(f"{loc.function} has no test", loc, 1.0 / (i + 1), {"kind": "uncovered"})
        for i, loc in enumerate(uncovered[:20])
    ]
    return dataclasses.replace(
        baton, causes=baton.causes + tuple(causes), affected=baton.affected + tuple(uncovered)
    )


@HANDLERS.beat("analyzeErrorIssues", "pure")
def analyze_error_issues(baton: DiagnosisBaton, ctx: BeatContext) -> DiagnosisBaton:
    anomaly = _anomaly(baton)
    info = baton.codebase
    if info is None or anomaly.kind is AnomalyKind.COVERAGE:
        return baton
    tests = analysis.failing_tests(info, anomaly)
    ranked = analysis.localise(info, tests) if tests else []
    frame = analysis.deepest_frame(info, tests)
    causes = analysis.line_causes(info, ranked, TOP_LINES)
    if frame.file:
        causes.insert(
            0, RootCause("deepest project frame of the exception", frame, 1.0, {"kind": "frame"})
        )
    if info.bisect is not None and info.bisect.culprit:
        causes.append(
            RootCause(
                f"culprit commit {info.bisect.culprit[:10]}",
                CodeLocation(),
                1.0,
                {"kind": "culprit", "commit": info.bisect.culprit},
            )
        )
    affected = {
        CodeLocation(c.location.file, c.location.function) for c in causes if c.location.function
    }
    notes = baton.notes
    if anomaly.kind is AnomalyKind.ERROR and anomaly.tests and not tests:
        notes = (*notes, "the anomaly's tests pass at HEAD: the failure does not reproduce")
    return dataclasses.replace(
        baton,
        ranked=tuple(ranked),
        frame=frame,
        causes=baton.causes + tuple(causes),
        affected=baton.affected + tuple(sorted(affected, key=lambda c: (c.file, c.function))),
        notes=notes,
    )


@HANDLERS.beat("assessImpact", "pure")
def assess_impact(baton: DiagnosisBaton, ctx: BeatContext) -> DiagnosisBaton:
    return dataclasses.replace(
        baton, impact=analysis.assess_impact(_anomaly(baton), baton.codebase)
    )


@HANDLERS.beat("recommendFixes", "pure")
def recommend_fixes(baton: DiagnosisBaton, ctx: BeatContext) -> DiagnosisBaton:
    anomaly = _anomaly(baton)
    culprit = (
        baton.codebase is not None
        and baton.codebase.bisect is not None
        and bool(baton.codebase.bisect.culprit)
    )
    recs = recommend(anomaly.kind, baton.learned, culprit)
    return dataclasses.replace(baton, recommendations=tuple(recs))


@HANDLERS.beat("storeDiagnosis", "stage-crew")
def store_diagnosis(baton: DiagnosisBaton, ctx: BeatContext) -> DiagnosisBaton:
    anomaly = _anomaly(baton)
    diagnosis = build_diagnosis(baton, anomaly)
    ctx.store.put(diagnosis, run_id=anomaly.run_id, subject=anomaly.subject)
    return dataclasses.replace(baton, diagnosis=diagnosis)


def build_diagnosis(baton: DiagnosisBaton, anomaly: Anomaly) -> Diagnosis:
    info = baton.codebase
    culprit = info.bisect.culprit if info is not None and info.bisect is not None else ""
    evidence: dict[str, str | int | float | bool] = {
        "ranked_lines": len(baton.ranked),
        "tests_measured": len(info.coverage) if info else 0,
        "notes": "; ".join(baton.notes),
    }
    if info is not None and info.bisect is not None:
        evidence["bisect"] = info.bisect.reason
        evidence["bisect_checks"] = len(info.bisect.tested)
    for key, values in (
        ("base_ns", info.durations_base_ns if info else ()),
        ("current_ns", info.durations_current_ns if info else ()),
    ):
        if values:
            evidence[f"median_{key}"] = int(statistics.median(values))
    return Diagnosis(
        id=f"diag-{uuid.uuid4().hex[:12]}",
        anomaly_id=anomaly.id,
        created_ns=time.time_ns(),
        root_causes=baton.causes,
        affected_code=tuple(dict.fromkeys(baton.affected)),
        impact=baton.impact,
        suggested_fixes=baton.recommendations,
        culprit_commit=culprit,
        baseline_commit=anomaly.baseline_commit,
        evidence=evidence,
    )


@HANDLERS.beat("analyzeCompleted", "pure")
def analyze_completed(baton: DiagnosisBaton, ctx: BeatContext) -> DiagnosisBaton:
    if baton.diagnosis is None:
        raise ValueError("analysis finished without a diagnosis (storeDiagnosis did not run)")
    d = baton.diagnosis
    top = d.root_causes[0].location if d.root_causes else None
    where = f" at {top.file}:{top.line}" if top and top.file else ""
    ctx.progress(
        f"diagnosis: {len(d.root_causes)} cause(s){where}; "
        f"culprit {d.culprit_commit[:10] or 'unknown'}"
    )
    return baton
