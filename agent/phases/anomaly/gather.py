"""Beat 2's loaders: the run and its history from the store, confirming re-runs, coverage facts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from agent import coverage_map
from agent.conductor import BeatContext
from agent.errors import GitError
from agent.phases.anomaly import baseline, errors, performance, rerun
from agent.phases.anomaly.model import (
    AnomalyBaton,
    Confirmation,
    CoverageFacts,
    TestObservation,
)

Loader = Callable[[AnomalyBaton, BeatContext], AnomalyBaton]
ORDER_CHECKS = 5  # order-dependence re-runs per run (each is its own process)
PREDECESSORS = 200  # tests replayed before an order-dependence suspect


def load_test_run(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    """The run's test spans and each test's comparable history, newest first."""
    req = baton.request
    store = ctx.store
    current = baseline.load_current(store, req.run_id)
    if not current:
        return baton
    runs, history = baseline.load_history(store, req.env_key, req.run_id, ctx.config.history)
    return dataclasses.replace(
        baton,
        current=current,
        history=history,
        baseline_runs=tuple(runs),
        baseline_commit=baseline.run_commit(store, runs[0]) if runs else "",
    )


def confirm_by_rerun(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    """Re-run timing suspects and new failures in a fresh process (skipped without a spec)."""
    spec = baton.request.rerun
    if spec is None or not baton.current:
        return baton
    suspects = performance.screen(baton.current, baton.history, ctx.config)
    failing = errors.needs_confirmation(baton.current, dict(baton.history), baton.request)
    counts = {s.nodeid: s.reruns for s in suspects}
    counts.update({n: errors.CONFIRM_RUNS for n in failing})
    if not counts:
        return baton
    result = rerun.rerun(spec, list(counts), counts)
    problems = [result.error] if result.error else []
    alone = {n: result.outcomes(n) for n in failing if result.outcomes(n)}
    in_order = _order_checks(baton.current, alone, spec, problems)
    conf = Confirmation(
        durations={s.nodeid: result.durations(s.nodeid) for s in suspects},
        alone=alone,
        in_order=in_order,
        errors=tuple(problems),
    )
    notes = tuple(f"confirming re-run: {p}" for p in problems)
    return dataclasses.replace(baton, confirmation=conf, notes=baton.notes + notes)


def _order_checks(
    current: Sequence[TestObservation],
    alone: dict[str, tuple[str, ...]],
    spec: rerun.RerunSpec,
    problems: list[str],
) -> dict[str, str]:
    """For failures that pass alone: replay the tests that ran before them on the same worker."""
    passing_alone = [n for n, outs in alone.items() if outs and all(o == "passed" for o in outs)]
    by_id = {o.nodeid: o for o in current}
    results: dict[str, str] = {}
    for nodeid in passing_alone[:ORDER_CHECKS]:
        target = by_id[nodeid]
        before = sorted(
            (o for o in current if o.worker == target.worker and o.start_ns < target.start_ns),
            key=lambda o: o.start_ns,
        )[-PREDECESSORS:]
        if not before:
            continue
        order = [o.nodeid for o in before] + [nodeid]
        res = rerun.rerun(spec, order, {})
        if res.error:
            problems.append(res.error)
        outs = res.outcomes(nodeid)
        if outs:
            results[nodeid] = outs[-1]
    return results


def load_coverage(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    """Uncovered changed lines (needs a map of this commit) and the total against the last map."""
    req = baton.request
    store = ctx.store
    map_id = req.coverage_map_id or coverage_map.latest_id(store, commit=req.commit or None)
    if not map_id or req.root is None:
        return baton
    info = coverage_map.summary(store, map_id)
    if info is None or info[0] != req.commit:
        return baton
    facts = CoverageFacts(total_now=info[2], map_commit=info[0])
    before_id = coverage_map.latest_id(store, before=map_id)
    before = coverage_map.summary(store, before_id) if before_id else None
    if before is not None and before[0] != info[0]:
        facts = dataclasses.replace(facts, total_before=before[2], before_commit=before[0])
    if baton.baseline_commit and baton.baseline_commit != req.commit:
        facts = _changed_gaps(baton, store, map_id, facts)
    return dataclasses.replace(baton, coverage=facts)


def _changed_gaps(
    baton: AnomalyBaton, store: object, map_id: int, facts: CoverageFacts
) -> CoverageFacts:
    from agent.git import changed_lines
    from agent.store import Store

    assert isinstance(store, Store) and baton.request.root is not None
    try:
        changed = changed_lines(baton.request.root, baton.baseline_commit)
    except GitError:
        return facts
    cmap = coverage_map.load(store, map_id, files=changed)
    if cmap is None:
        return facts
    gaps, statements = coverage_map.uncovered(cmap, changed)
    return dataclasses.replace(facts, uncovered_changed=gaps, changed_statements=statements)
