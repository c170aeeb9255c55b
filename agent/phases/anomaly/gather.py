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
    RerunSpec,
    Sampler,
    TestObservation,
)

Loader = Callable[[AnomalyBaton, BeatContext], AnomalyBaton]
ORDER_CHECKS = 5  # order-dependence re-runs per run (each is its own process)
PREDECESSORS = 200  # tests replayed before an order-dependence suspect


def load_test_run(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    """The run's test spans and each test's comparable history, newest first."""
    req = baton.request
    store = ctx.store
    if req.current is not None:  # observed while the run was fed and stored
        current = req.current
    elif req.events is not None:  # handed on by the telemetry phase that just stored them
        current = baseline.current_from_events(req.events)
    else:
        current = baseline.load_current(store, req.run_id)
    if not current:
        return baton
    rows: dict[str, str] = {}
    runs, history = baseline.load_history(
        store, req.env_key, req.run_id, ctx.config.history, rows_read=rows, ahead=req.ahead
    )
    history = baseline.fill_failing(store, req, current, history, ctx.config.history)
    return dataclasses.replace(
        baton,
        current=current,
        history=history,
        baseline_rows=rows,
        baseline_runs=tuple(runs),
        baseline_commit=baseline.run_commit(store, runs[0]) if runs else "",
    )


def confirm_by_rerun(baton: AnomalyBaton, ctx: BeatContext) -> AnomalyBaton:
    """Re-run timing suspects (in place when a sampler is given) and new failures (alone)."""
    req = baton.request
    if (req.rerun is None and req.sampler is None) or not baton.current:
        return baton
    suspects = performance.screen(baton.current, baton.history, ctx.config, timed=req.timed)
    failing = errors.needs_confirmation(baton.current, dict(baton.history), req)
    timing = {s.nodeid: s.reruns for s in suspects}
    problems: list[str] = []
    durations = _sample(req.sampler, suspects, problems)
    counts = {n: c for n, c in timing.items() if n not in durations}
    counts.update(dict.fromkeys(failing, errors.CONFIRM_RUNS))
    result = rerun.RerunResult(())
    if req.rerun is not None and counts:
        result = rerun.rerun(req.rerun, list(counts), counts)
        if result.error:
            problems.append(result.error)
    durations.update({n: result.durations(n) for n in timing if n in counts})
    alone = {n: result.outcomes(n) for n in failing if result.outcomes(n)}
    in_order = _order_checks(baton.current, alone, req.rerun, problems) if req.rerun else {}
    conf = Confirmation(durations=durations, alone=alone, in_order=in_order, errors=tuple(problems))
    notes = tuple(f"confirming re-run: {p}" for p in problems)
    if timing:
        runs = sum(len(d) for d in durations.values())
        notes += (f"re-ran {len(timing)} timing suspect(s) {runs} times to confirm",)
    return dataclasses.replace(baton, confirmation=conf, notes=baton.notes + notes)


def _sample(
    sampler: Sampler | None, suspects: list[performance.Suspect], problems: list[str]
) -> dict[str, tuple[int, ...]]:
    """A pilot run each; only suspects still slow in it get the full sample.

    Most suspects of a green run are one-off scheduler hiccups: one pilot run clears them for
    the price of one test run. The pilot is not part of the tested sample, so the rank test
    sees only runs made after every selection step.
    """
    if sampler is None or not suspects:
        return {}
    try:
        pilot = sampler([s.nodeid for s in suspects], {s.nodeid: 1 for s in suspects})
        slow = [s for s in suspects if any(s.still_slow(d) for d in pilot.get(s.nodeid, ()))]
        result: dict[str, tuple[int, ...]] = {s.nodeid: () for s in suspects if s not in slow}
        if slow:
            result.update(sampler([s.nodeid for s in slow], {s.nodeid: s.reruns for s in slow}))
        return result
    except Exception as exc:  # a test that cannot be re-run in place: judge it on history only
        problems.append(f"in-process re-run failed: {type(exc).__name__}: {exc}")
        return {}


def _order_checks(
    current: Sequence[TestObservation],
    alone: dict[str, tuple[str, ...]],
    spec: RerunSpec,
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
