"""The ten beats of validation.run, on one frozen baton."""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from agent import git
from agent.conductor import BeatContext
from agent.errors import ConfigError, GitError, PatchError
from agent.handlers import HandlerSet
from agent.patches import PatchPolicy, check_patch
from agent.phases.validation import checks, docrefs, stages
from agent.phases.validation.model import SELECTIONS, ValidationBaton
from agent.phases.validation.workspace import Worktree, prune_stale
from agent.records import CheckResult, ValidationResult
from agent.runner import FileCoverage

HANDLERS = HandlerSet("validation")
# Runs of the patched code; baselines run the unpatched code and do not count as its tests.
CANDIDATE_STAGES = ("anomaly", "affected", "full", "doctest")


@HANDLERS.beat("validateRequested", "pure")
def validate_requested(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    req = baton.request
    if req.selection not in SELECTIONS:
        raise ConfigError(f"validation selection {req.selection!r}: expected affected or full")
    if req.repeats < 1:
        raise ConfigError(f"validation repeats must be at least 1, got {req.repeats}")
    if not req.timeout_s > 0:
        raise ConfigError(f"validation timeout must be positive, got {req.timeout_s}")
    if not req.patch.id:
        raise ConfigError("the patch to validate has no id")
    # The caller's deadline (if any) arrives on the baton; the request's timeout caps it too.
    deadline = min(baton.deadline or math.inf, time.monotonic() + req.timeout_s)
    return dataclasses.replace(baton, started_ns=time.time_ns(), deadline=deadline)


@HANDLERS.beat("loadPatch", "stage-crew")
def load_patch(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    """Resolve the base commit and hold the diff to the safety policy before writing anything."""
    root = ctx.config.root
    patch = baton.request.patch
    try:
        spec = f"{patch.base_commit or 'HEAD'}^{{commit}}"
        base = git.run_git(root, "rev-parse", "--verify", "-q", spec)
    except GitError:
        check = CheckResult("patch-safety", False, f"base commit {patch.base_commit!r} not found")
        return baton.with_check(check, stop=True)
    base = base.strip()
    try:
        checked = check_patch(
            patch.diff, PatchPolicy.from_config(ctx.config), git.tracked_symlinks(root, base)
        )
    except PatchError as exc:
        return dataclasses.replace(baton, base_commit=base).with_check(
            CheckResult("patch-safety", False, str(exc)), stop=True
        )
    files = len(checked.files)
    return dataclasses.replace(baton, base_commit=base, checked=checked).with_check(
        CheckResult("patch-safety", True, f"{files} file(s), {checked.hunks} hunk(s)")
    )


@HANDLERS.beat("applyPatch", "stage-crew")
def apply_patch(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    """Apply in a scratch worktree at the base commit; check every touched file still parses."""
    checked = baton.checked
    if baton.stopped or checked is None:
        return baton
    root = ctx.config.root
    worktree = baton.request.worktree
    if worktree is None:
        prune_stale(root)
        worktree = Worktree(root, baton.base_commit, baton.request.patch.id)
        baton.cleanup.worktrees.append(worktree)
        worktree.open()
    else:
        worktree.reset()
    baton = dataclasses.replace(baton, worktree=worktree)
    try:
        worktree.apply(checked.diff)
    except PatchError as exc:
        return baton.with_check(CheckResult("apply", False, str(exc)), stop=True)
    files_after = {p: _read(worktree.path / p) for p in checked.target_paths}
    removed = _vanished(checks.removed_definitions(checked), files_after)
    names = {n for group in removed.values() for n in group}
    baton = dataclasses.replace(
        baton,
        files_after=files_after,
        removed_names=removed,
        doc_references=docrefs.references(worktree.path, names),
    )
    baton = baton.with_check(CheckResult("apply", True, f"applied to {baton.base_commit[:12]}"))
    return baton.with_check(checks.check_syntax(files_after), stop=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ""


def _vanished(
    removed: dict[str, set[str]], files_after: dict[str, str | None]
) -> dict[str, tuple[str, ...]]:
    """Removed names not defined again in any touched file (a move is not a removal)."""
    still = set().union(*(checks.defined_names(t) for t in files_after.values() if t))
    return {f: tuple(sorted(n - still)) for f, n in removed.items() if n - still}


@HANDLERS.beat("runTests", "stage-crew")
def run_tests(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    """The anomaly's tests first (fast reject), then the selected set, then doctests."""
    if baton.stopped:
        return baton
    baton = stages.choose(baton, ctx)
    if stages.one_run_will_do(baton):
        # A small affected set: the anomaly's tests lead one run that repeats them all.
        baton = stages.start_baseline(baton, ctx)
        baton = stages.run_selected(baton, ctx, combined=True)
    else:
        baton = stages.run_anomaly_tests(baton, ctx)
        if baton.stopped:
            return baton
        baton = stages.start_baseline(baton, ctx)
        baton = stages.run_selected(baton, ctx)
    return stages.run_doctests(baton, ctx)


@HANDLERS.beat("checkCoverage", "stage-crew")
def check_coverage(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    """Total and changed-line coverage against the base commit, measured the same way."""
    checked = baton.checked
    if baton.stopped or not baton.request.coverage or checked is None:
        return baton
    after_cov: Mapping[str, FileCoverage] | None = stages.selected_coverage(baton)
    if after_cov is None:
        return baton.with_check(CheckResult("coverage", False, "no coverage data was written"))
    # The map knows only lines run inside tests; a patch whose changed lines run at import
    # time is measured against the base commit's full coverage instead (like with like).
    import_time = checks.import_time_changes(after_cov, checks.patched_lines(checked))
    stored = (
        None
        if baton.map_lines is None or import_time
        else checks.in_test_coverage(baton.map_lines, after_cov)
    )
    before_cov: Mapping[str, FileCoverage] | None
    if stored is not None:
        before_cov, after_cov = stored
    else:
        baton, before_cov = stages.baseline_coverage(baton, ctx)
    if before_cov is None:
        return baton.with_check(
            CheckResult("coverage", False, "the base commit's coverage could not be measured")
        )
    before = checks.coverage_figures(before_cov, checks.base_lines(checked))
    after = checks.coverage_figures(after_cov, checks.patched_lines(checked))
    baton = dataclasses.replace(baton, coverage_before=before, coverage_after=after)
    return baton.with_check(checks.check_coverage(before, after))


@HANDLERS.beat("verifyPerformance", "stage-crew")
def verify_performance(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    """For a slowdown: the regressed test's timing, re-run, back within its threshold."""
    if baton.stopped or not baton.request.is_performance:
        return baton
    baton = stages.measure_timing(baton, ctx)
    ratio = baton.request.perf_ratio or ctx.config.perf_ratio
    floor_ns = ctx.config.perf_floor_ms * 1e6
    return baton.with_check(
        checks.check_performance(baton.timing_after, baton.timing_before, ratio, floor_ns)
    )


@HANDLERS.beat("validateDocumentation", "pure")
def validate_documentation(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    if baton.stopped or baton.checked is None:
        return baton
    return baton.with_check(checks.check_doc_references(baton.removed_names, baton.doc_references))


@HANDLERS.beat("aggregateValidationResults", "pure")
def aggregate_validation_results(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    """One verdict: every check that ran passed, and the tests really ran."""
    check_list = list(baton.checks)
    if not baton.stopped and not any(c.name in ("tests", "anomaly-tests") for c in check_list):
        check_list.append(CheckResult("tests", False, "no tests ran"))
    candidate = [r.outcome for r in baton.runs if r.stage in CANDIDATE_STAGES]
    passed, failed, skipped = checks.summarise_tests(candidate)
    before, after = baton.coverage_before, baton.coverage_after
    req = baton.request
    result = ValidationResult(
        id=f"val-{req.patch.id}-{uuid.uuid4().hex[:8]}",
        patch_id=req.patch.id,
        passed=bool(check_list) and all(c.passed for c in check_list),
        created_ns=baton.started_ns or time.time_ns(),
        duration_ns=time.time_ns() - baton.started_ns if baton.started_ns else 0,
        tests_passed=passed,
        tests_failed=failed,
        tests_skipped=skipped,
        coverage_before=None if before is None else before.total,
        coverage_after=None if after is None else after.total,
        changed_lines_coverage=None if after is None else after.changed,
        performance_before_ns=_median(baton.timing_before),
        performance_after_ns=_median(baton.timing_after),
        documentation_valid=all(
            c.passed for c in check_list if c.name in ("documentation", "doctests")
        ),
        checks=tuple(check_list),
        target_commit=baton.base_commit,
    )
    return dataclasses.replace(baton, result=result, checks=tuple(check_list))


def _median(sample: tuple[int, ...]) -> float | None:
    from agent import stats

    return stats.median(sample) if sample else None


@HANDLERS.beat("storeValidationResults", "stage-crew")
def store_validation_results(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    if baton.result is None:
        raise ValueError("no validation result to store (aggregate did not run?)")
    ctx.store.put(baton.result, subject=baton.request.patch.id)
    return baton


@HANDLERS.beat("validateCompleted", "pure")
def validate_completed(baton: ValidationBaton, ctx: BeatContext) -> ValidationBaton:
    result = baton.result
    if result is None:
        raise ValueError("validation ended without a result")
    if result.passed != all(c.passed for c in result.checks):
        raise ValueError("validation verdict disagrees with its checks")
    verdict = "passed" if result.passed else "failed: " + "; ".join(result.reasons)
    seconds = result.duration_ns / 1e9
    ctx.progress(f"validation of {baton.request.patch.id} {verdict} ({seconds:.1f}s)")
    return baton
