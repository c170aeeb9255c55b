"""The delivery policy as a pure function: what may be proposed, what may be merged, and why."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from agent.config import Config
from agent.records import Patch, ValidationResult


@dataclass(frozen=True)
class Facts:
    """What the world looked like when delivery was requested (gathered by a stage-crew beat)."""

    confidence: float
    open_proposals: int
    merges_this_run: int
    dirty: bool
    target_moved: bool
    duplicate_of: str = ""  # an open proposal branch that already makes this exact change
    uncommitted_base: bool = False  # the patch was made on a snapshot of uncommitted work


@dataclass(frozen=True)
class Approval:
    propose: bool
    merge: bool
    reasons: tuple[str, ...] = ()  # why something was refused; empty when all is allowed

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def path_allowed(path: str, allow: tuple[str, ...]) -> bool:
    """True when `path` matches an allow-list entry (a glob, or a directory prefix)."""
    if not allow:
        return True
    for pattern in allow:
        prefix = pattern.rstrip("/") + "/"
        if fnmatch.fnmatchcase(path, pattern) or path.startswith(prefix):
            return True
    return False


def proposal_refusals(
    patch: Patch, validation: ValidationResult, facts: Facts, config: Config
) -> list[str]:
    reasons = []
    if not validation.passed:
        failed = "; ".join(validation.reasons) or "no reason recorded"
        reasons.append(f"patch {patch.id[:12]} did not pass validation ({failed})")
    if not patch.syntax_valid:
        reasons.append("patch leaves files that do not parse")
    outside = [f for f in patch.files if not path_allowed(f, config.allow_paths)]
    if outside:
        reasons.append(f"touches paths outside allow_paths: {', '.join(outside)}")
    if len(patch.files) > config.max_patch_files:
        reasons.append(
            f"touches {len(patch.files)} files (max_patch_files={config.max_patch_files})"
        )
    if len(patch.diff.encode()) > config.max_patch_bytes:
        reasons.append(f"diff is larger than max_patch_bytes={config.max_patch_bytes}")
    if facts.open_proposals >= config.max_open_proposals and not facts.duplicate_of:
        reasons.append(
            f"{facts.open_proposals} proposals already open "
            f"(max_open_proposals={config.max_open_proposals})"
        )
    return reasons


def merge_refusals(patch: Patch, facts: Facts, config: Config) -> list[str]:
    reasons = []
    if facts.confidence < config.min_confidence:
        reasons.append(
            f"confidence {facts.confidence:.2f} below min_confidence={config.min_confidence:.2f}"
        )
    if patch.size > config.max_merge_lines:
        reasons.append(f"{patch.size} changed lines (max_merge_lines={config.max_merge_lines})")
    if facts.merges_this_run >= 1:
        reasons.append("already merged one patch in this run (at most one merge per run)")
    if facts.dirty:
        reasons.append("the working tree has uncommitted changes")
    if facts.uncommitted_base:
        reasons.append("the patch is based on uncommitted work, not on a commit of the target")
    if facts.target_moved:
        reasons.append("the target branch moved since validation")
    if not config.ci_command:
        reasons.append("no ci_command configured to run on the branch")
    return reasons


def check_approval(
    mode: str, patch: Patch, validation: ValidationResult, facts: Facts, config: Config
) -> Approval:
    """Proposing needs a validated, allowed patch and room for one more proposal; merging
    additionally needs confidence, a small patch, a clean tree, an unmoved target and CI."""
    if mode == "off":
        return Approval(False, False, ("delivery is off",))
    refusals = proposal_refusals(patch, validation, facts, config)
    if refusals:
        return Approval(False, False, tuple(refusals))
    if mode != "merge":
        return Approval(True, False)
    merge_no = merge_refusals(patch, facts, config)
    return Approval(True, not merge_no, tuple(f"merge refused: {r}" for r in merge_no))
