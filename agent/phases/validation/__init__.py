"""Phase 5, validation.run: prove a candidate patch in an isolated worktree first."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import Config
from agent.errors import GitError, PatchError
from agent.patches import PatchPolicy, check_patch
from agent.phases.validation import checks
from agent.phases.validation.beats import HANDLERS
from agent.phases.validation.model import StageRun, ValidationBaton, ValidationRequest
from agent.phases.validation.workspace import Worktree, prune_stale
from agent.records import CheckResult, ValidationResult
from agent.runner import RunOutcome, Sandbox, run_pytest

if TYPE_CHECKING:
    from agent.conductor import Conductor

SEQUENCE = "validation.run"

__all__ = [
    "HANDLERS",
    "SEQUENCE",
    "QuickVerdict",
    "StageRun",
    "ValidationBaton",
    "ValidationRequest",
    "Worktree",
    "quick_reject",
    "validate",
    "validate_baton",
]


def validate_baton(
    conductor: Conductor, request: ValidationRequest, deadline: float | None = None
) -> ValidationBaton:
    """Play validation.run; worktrees made on the way are removed whatever happens.

    `deadline` (a time.monotonic() value) caps the request's own timeout."""
    baton = ValidationBaton(request=request, deadline=math.inf if deadline is None else deadline)
    try:
        final: ValidationBaton = conductor.play(SEQUENCE, baton, deadline=deadline)
    finally:
        baton.cleanup.close()
    return final


def validate(
    conductor: Conductor, request: ValidationRequest, deadline: float | None = None
) -> ValidationResult:
    """Run the whole gate on one candidate; the stored ValidationResult names each failed check."""
    final = validate_baton(conductor, request, deadline)
    if final.result is None:
        raise RuntimeError("validation.run ended without a result")
    return final.result


@dataclass(frozen=True)
class QuickVerdict:
    """The cheap pre-check of a candidate: refused, unparsable, or the anomaly's tests' result."""

    passed: bool
    check: CheckResult
    outcome: RunOutcome | None = None

    @property
    def reason(self) -> str:
        return self.check.reason


def quick_reject(
    config: Config,
    diff: str,
    tests: Sequence[str],
    *,
    worktree: Worktree | None = None,
    base_commit: str = "HEAD",
    repeats: int = 1,
    timeout_s: float = 60.0,
    patch_id: str = "quick",
) -> QuickVerdict:
    """Safety policy, apply, parse and the anomaly's tests (stop at the first failure).

    Pass a `Worktree` opened at the base commit to reuse it across candidates (it is reset
    before each one); otherwise a fresh one is made and removed.
    """
    from agent import git

    root = config.root
    try:
        base = git.run_git(root, "rev-parse", "--verify", "-q", f"{base_commit}^{{commit}}")
        base = base.strip()
        policy = PatchPolicy.from_config(config)
        checked = check_patch(diff, policy, git.tracked_symlinks(root, base))
    except (PatchError, GitError) as exc:
        return QuickVerdict(False, CheckResult("patch-safety", False, str(exc)))
    own = worktree is None
    if worktree is None:
        prune_stale(root)
        worktree = Worktree(root, base, patch_id).open()
    else:
        worktree.reset()
    try:
        return _quick(worktree, checked.target_paths, tests, repeats, timeout_s, patch_id, diff)
    finally:
        if own:
            worktree.close()


def _quick(  # noqa: PLR0917 - private, called once
    worktree: Worktree,
    paths: Sequence[str],
    tests: Sequence[str],
    repeats: int,
    timeout_s: float,
    patch_id: str,
    diff: str,
) -> QuickVerdict:
    try:
        worktree.apply(diff)
    except PatchError as exc:
        return QuickVerdict(False, CheckResult("apply", False, str(exc)))
    texts = {p: _read(worktree.path / p) for p in paths}
    syntax = checks.check_syntax(texts)
    if not syntax.passed:
        return QuickVerdict(False, syntax)
    started = time.monotonic()
    outcome = run_pytest(
        worktree.path,
        [*tests, "-x"],
        patch_id=patch_id,
        sandbox=Sandbox(timeout_s=max(1.0, timeout_s - (time.monotonic() - started))),
        repeat=repeats,
    )
    check = checks.check_repeats(outcome, tests, repeats)
    return QuickVerdict(check.passed, check, outcome)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ""
