"""The test runs of a validation: anomaly tests, the selected set, doctests and baselines."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent import coverage_map, git
from agent.conductor import BeatContext
from agent.coverage_map import CoverageMap
from agent.errors import GitError, StoreError
from agent.phases.validation import checks, selection
from agent.phases.validation.background import BaselineJob
from agent.phases.validation.model import StageRun, ValidationBaton
from agent.phases.validation.workspace import Worktree
from agent.runner import FileCoverage, RunOutcome, Sandbox, run_pytest

# Coverage of the base commit per selected test set, kept for the life of the process.
_BASELINES: dict[tuple[str, str, str], dict[str, FileCoverage]] = {}


def _sandbox(baton: ValidationBaton) -> Sandbox:
    remaining = max(1.0, baton.deadline - time.monotonic()) if baton.deadline else 300.0
    return Sandbox(timeout_s=remaining)


def _run(
    baton: ValidationBaton,
    stage: str,
    args: Sequence[str],
    *,
    worktree: Path | None = None,
    **options: int | bool,
) -> StageRun:
    assert baton.worktree is not None or worktree is not None
    where = worktree or (baton.worktree.path if baton.worktree else Path("."))
    with tempfile.TemporaryDirectory(prefix="selfheal-args-") as tmp:
        argv = selection.args_file(Path(tmp), list(args))
        outcome = run_pytest(
            where,
            argv,
            patch_id=baton.request.patch.id,
            sandbox=_sandbox(baton),
            coverage=bool(options.get("coverage", False)),
            repeat=int(options.get("repeat", 1)),
            workers=int(options.get("workers", 0)),
        )
    return StageRun(stage, tuple(args), outcome)


def run_anomaly_tests(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    """Fast reject: the anomaly's own tests, `repeats` times in a row, stopping at a failure."""
    tests = baton.request.anomaly_tests
    if not tests:
        return baton
    run = _run(baton, "anomaly", [*tests, "-x"], repeat=_repeats(baton, ctx))
    check = checks.check_repeats(run.outcome, tests, baton.request.repeats)
    return baton.with_run(run).with_check(check, stop=True)


def _repeats(baton: ValidationBaton, ctx: BeatContext) -> int:
    # A slowdown needs a timing sample as large as detection's confirming re-runs.
    if baton.request.is_performance:
        return max(baton.request.repeats, ctx.config.perf_reruns)
    return baton.request.repeats


def choose(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    """Pick the wide run's tests: affected by the changed lines, or the full suite."""
    assert baton.checked is not None
    cmap, stale = load_map(ctx, baton.base_commit, baton.checked.paths)
    chosen = selection.select(
        baton.checked, baton.request.anomaly_tests, cmap, baton.request.selection, stale
    )
    known = len(cmap.per_test) if cmap is not None and chosen.full else len(chosen.tests)
    return dataclasses.replace(baton, selection=chosen, known_tests=known)


def one_run_will_do(baton: ValidationBaton) -> bool:
    """Affected sets small enough to repeat whole; timing samples need a run of their own."""
    chosen = baton.selection
    return (
        chosen is not None
        and not chosen.full
        and bool(baton.request.anomaly_tests)
        and not baton.request.is_performance
        and len(chosen.tests) <= selection.COMBINED_MAX_TESTS
    )


def _workers(baton: ValidationBaton) -> int:
    chosen = baton.selection
    if chosen is None or not selection.xdist_available():
        return 0
    return selection.workers_for(baton.known_tests)


def _wide_args(baton: ValidationBaton, combined: bool) -> list[str]:
    assert baton.selection is not None
    if not combined:
        return baton.selection.args
    lead = list(baton.request.anomaly_tests)
    return lead + [t for t in baton.selection.args if t not in lead]


def start_baseline(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    """Measure the base commit's coverage on a thread, unless it is already known: cached,
    or stored in the per-test coverage map of the base commit (affected sets only)."""
    if not baton.request.coverage or baton.selection is None:
        return baton
    args = _wide_args(baton, one_run_will_do(baton))
    if _cached(ctx.config.root, baton.base_commit, args) is not None:
        return baton
    stored = map_lines(ctx, baton.base_commit, args) if not baton.selection.full else None
    if stored is not None:
        return dataclasses.replace(baton, map_lines=stored)
    job = BaselineJob(
        ctx.config.root,
        baton.base_commit,
        args,
        patch_id=baton.request.patch.id,
        sandbox=_sandbox(baton),
        workers=_workers(baton),
    )
    baton.cleanup.jobs.append(job)
    return dataclasses.replace(baton, baseline_job=job.start())


def run_selected(
    baton: ValidationBaton, ctx: BeatContext, *, combined: bool = False
) -> ValidationBaton:
    """The affected tests (or the full suite), with coverage when it is to be compared."""
    assert baton.selection is not None
    stage = "full" if baton.selection.full else "affected"
    repeat = baton.request.repeats if combined else 1
    args = _wide_args(baton, combined)
    run = _run(
        baton, stage, args, coverage=baton.request.coverage, workers=_workers(baton), repeat=repeat
    )
    baton = baton.with_run(run)
    if combined:
        check = checks.check_repeats(run.outcome, baton.request.anomaly_tests, repeat)
        baton = baton.with_check(check, stop=True)
        if baton.stopped:
            return baton
    return baton.with_check(checks.check_run("tests", run.outcome), stop=True)


def load_map(
    ctx: BeatContext, base: str, paths: Sequence[str]
) -> tuple[CoverageMap | None, set[str]]:
    """The newest per-test coverage map usable at `base`, and the files changed since it."""
    try:
        store = ctx.store
        map_id = coverage_map.latest_id(store, commit=base) or coverage_map.latest_id(store)
        cmap = coverage_map.load(store, map_id, paths) if map_id else None
    except StoreError:
        return None, set()
    if cmap is None or cmap.dirty:
        return None, set()
    if cmap.commit == base:
        return cmap, set()
    try:
        out = git.run_git(ctx.config.root, "diff", "--name-only", cmap.commit, base, "--", *paths)
    except GitError:
        return None, set()
    return cmap, set(out.split())


def run_doctests(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    """`--doctest-modules` on touched source modules that contain doctests."""
    modules = [
        name
        for name, text in baton.files_after.items()
        if name.endswith(".py") and text and ">>>" in text and not checks.TEST_FILE.search(name)
    ]
    if not modules:
        return baton
    run = _run(baton, "doctest", ["--doctest-modules", "-p", "no:randomly", *modules])
    check = checks.check_run("doctests", run.outcome, require_tests=False)
    return baton.with_run(run).with_check(check)


def selected_coverage(baton: ValidationBaton) -> Mapping[str, FileCoverage] | None:
    run = baton.run_of("affected") or baton.run_of("full")
    if run is None or run.outcome.result is None:
        return None
    return run.outcome.result.coverage


def baseline_coverage(
    baton: ValidationBaton, ctx: BeatContext
) -> tuple[ValidationBaton, Mapping[str, FileCoverage] | None]:
    """Coverage of the same tests on the unpatched base commit: cached, or measured."""
    run = baton.run_of("affected") or baton.run_of("full")
    assert run is not None
    cached = _cached(ctx.config.root, baton.base_commit, run.args)
    if cached is not None:
        return baton, cached
    job = baton.baseline_job
    if job is None or job.args != run.args:
        job = BaselineJob(
            ctx.config.root,
            baton.base_commit,
            run.args,
            patch_id=baton.request.patch.id,
            sandbox=_sandbox(baton),
            workers=_workers(baton),
        ).start()
    outcome = job.wait()
    if outcome is None:
        return baton, None
    baton = baton.with_run(StageRun("coverage-baseline", job.args, outcome))
    result = outcome.result
    if outcome.status != "finished" or result is None or result.coverage is None:
        return baton, None
    key = (str(ctx.config.root), baton.base_commit, _args_key(job.args))
    _BASELINES[key] = dict(result.coverage)
    _write_cache(ctx.config.root, key, result.coverage)
    return baton, result.coverage


def map_lines(ctx: BeatContext, base: str, args: Sequence[str]) -> checks.MapLines | None:
    """What the selected tests covered at `base`, from a clean map of that very commit.

    A partial map would understate the baseline, so every selected test must be in it."""
    try:
        store = ctx.store
        map_id = coverage_map.latest_id(store, commit=base)
        cmap = coverage_map.load(store, map_id) if map_id else None
    except StoreError:
        return None
    if cmap is None or cmap.dirty or not args:
        return None
    tests: set[str] = set()
    for arg in args:
        found = [n for n in cmap.per_test if n == arg or n.startswith(arg + "::")]
        if not found:
            return None
        tests.update(found)
    covered: dict[str, set[int]] = {}
    for node in tests:
        for file, lines in cmap.per_test[node].items():
            covered.setdefault(file, set()).update(lines)
    frozen = {f: frozenset(lines) for f, lines in covered.items()}
    return checks.MapLines(dict(cmap.statements), frozen)


def _cached(root: Path, base: str, args: Sequence[str]) -> dict[str, FileCoverage] | None:
    key = (str(root), base, _args_key(args))
    found = _BASELINES.get(key) or _read_cache(root, key)
    if found is not None:
        _BASELINES[key] = found
    return found


def _args_key(args: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(args)).encode()).hexdigest()[:16]


def _cache_path(root: Path, key: tuple[str, str, str]) -> Path:
    return root / ".selfheal" / "cache" / f"coverage-{key[1][:16]}-{key[2]}.json"


def _read_cache(root: Path, key: tuple[str, str, str]) -> dict[str, FileCoverage] | None:
    try:
        data = json.loads(_cache_path(root, key).read_text(encoding="utf-8"))
        return {
            f: FileCoverage(frozenset(v["statements"]), frozenset(v["missing"]))
            for f, v in data.items()
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(root: Path, key: tuple[str, str, str], cov: Mapping[str, FileCoverage]) -> None:
    path = _cache_path(root, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            f: {"statements": sorted(fc.statements), "missing": sorted(fc.missing)}
            for f, fc in cov.items()
        }
        path.write_text(json.dumps(data), encoding="utf-8")
    except OSError:
        pass  # a cache that cannot be written only costs a re-measure next time


def measure_timing(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    """The candidate's sample from the anomaly run; the baseline from the request, the
    anomaly's evidence, or a run of the same tests at the anomaly's baseline commit."""
    run = baton.run_of("anomaly")
    after = _durations(run.outcome) if run else ()
    baton = dataclasses.replace(baton, timing_after=after)
    before = baton.request.baseline_timing_ns or _evidence_baseline(baton)
    if before:
        return dataclasses.replace(baton, timing_before=before)
    anomaly = baton.request.anomaly
    if anomaly is None or not anomaly.baseline_commit or not baton.request.anomaly_tests:
        return baton
    with Worktree(ctx.config.root, anomaly.baseline_commit, "timing") as base:
        measured = _run(
            baton,
            "timing-baseline",
            baton.request.anomaly_tests,
            worktree=base.path,
            repeat=_repeats(baton, ctx),
        )
    baton = baton.with_run(measured)
    return dataclasses.replace(baton, timing_before=_durations(measured.outcome))


def _durations(outcome: RunOutcome) -> tuple[int, ...]:
    if outcome.result is None:
        return ()
    return tuple(t.duration_ns for t in outcome.result.tests if t.outcome == "passed")


def _evidence_baseline(baton: ValidationBaton) -> tuple[int, ...]:
    anomaly = baton.request.anomaly
    value = anomaly.evidence.get("baseline_median_ms") if anomaly is not None else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return (int(value * 1e6),)
    return ()
