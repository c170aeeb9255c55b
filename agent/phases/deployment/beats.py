"""The 11 beats of deployment.deploy: policy, proposal branch, PR, CI, merge, deploy, verify."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent import git, snapshot
from agent.conductor import BeatContext
from agent.config import DEPLOY_MODES
from agent.errors import ConfigError, GitError
from agent.handlers import HandlerSet
from agent.phases.deployment import gitops, message
from agent.phases.deployment.policy import Approval, Facts, check_approval
from agent.phases.deployment.providers import DeliveryError, PullRequestSpec, choose_provider
from agent.phases.deployment.shell import CommandOutcome, run_command
from agent.records import (
    Anomaly,
    Deployment,
    DeploymentStatus,
    Diagnosis,
    Patch,
    ValidationResult,
    VerificationStatus,
)
from agent.store import Store

HANDLERS = HandlerSet("deployment")

Revalidator = Callable[[Patch, str], ValidationResult]


@dataclass(frozen=True)
class DeployRequest:
    """Deliver one validated patch; records may be given, or loaded from the store by id."""

    patch_id: str = ""
    patch: Patch | None = None
    validation: ValidationResult | None = None
    anomaly: Anomaly | None = None
    diagnosis: Diagnosis | None = None
    mode: str = ""  # empty: Config.deploy
    run_id: int = 0  # the pipeline run; at most one merge per run
    # Called when the target moved since validation: validate the patch again on the new
    # target commit. Without it, a moved target stops the merge.
    revalidate: Revalidator | None = None


@dataclass(frozen=True)
class DeployBaton:
    request: DeployRequest
    mode: str = ""
    repo: Path = Path(".")
    patch: Patch | None = None
    validation: ValidationResult | None = None
    anomaly: Anomaly | None = None
    diagnosis: Diagnosis | None = None
    deployment_id: str = ""
    facts: Facts | None = None
    approval: Approval | None = None
    target_branch: str = ""
    target_commit: str = ""  # the commit the patch was validated against
    branch: str = ""
    branch_commit: str = ""
    patch_file: str = ""
    pr_number: int | None = None
    pr_url: str = ""
    ci: CommandOutcome | None = None
    merge_commit: str = ""
    deploy: CommandOutcome | None = None
    verify: CommandOutcome | None = None
    revert_commit: str = ""
    status: DeploymentStatus = DeploymentStatus.PENDING
    verification: VerificationStatus = VerificationStatus.PENDING
    reasons: tuple[str, ...] = ()
    summary: tuple[str, ...] = field(default_factory=tuple)

    def refuse(self, reason: str, status: DeploymentStatus | None = None) -> DeployBaton:
        return dataclasses.replace(
            self, reasons=(*self.reasons, reason), status=status or self.status
        )

    def deployment(self) -> Deployment:
        assert self.patch is not None
        return Deployment(
            id=self.deployment_id,
            patch_id=self.patch.id,
            mode=self.mode,
            status=self.status,
            created_ns=time.time_ns(),
            anomaly_id=self.patch.anomaly_id,
            branch=self.branch,
            commit=self.merge_commit or self.branch_commit,
            target_branch=self.target_branch,
            target_commit=self.target_commit,
            pr_number=self.pr_number,
            pr_url=self.pr_url,
            verification=self.verification,
            reason="; ".join(self.reasons),
        )


def _save(baton: DeployBaton, store: Store) -> None:
    subject = baton.anomaly.subject if baton.anomaly else ""
    store.put(baton.deployment(), run_id=baton.request.run_id, subject=subject)


# 1 -------------------------------------------------------------------------------------
@HANDLERS.beat("deployRequested", "pure")
def deploy_requested(baton: DeployBaton, ctx: BeatContext) -> DeployBaton:
    """Check the request: a known mode and something to deliver."""
    req = baton.request
    mode = req.mode or ctx.config.deploy
    if mode not in DEPLOY_MODES:
        raise ConfigError(f"deploy mode {mode!r}: expected one of {', '.join(DEPLOY_MODES)}")
    if req.patch is None and not req.patch_id:
        raise ConfigError("deploy request names no patch (patch or patch_id)")
    if req.patch and req.validation and req.validation.patch_id != req.patch.id:
        raise ConfigError(
            f"validation {req.validation.id} is for patch {req.validation.patch_id}, "
            f"not {req.patch.id}"
        )
    return dataclasses.replace(
        baton, mode=mode, repo=ctx.config.root, deployment_id=uuid.uuid4().hex[:16]
    )


# 2 -------------------------------------------------------------------------------------
def _find_validation(store: Store, patch_id: str) -> ValidationResult | None:
    direct = store.find(ValidationResult, subject=patch_id, limit=1)
    if direct:
        return direct[0]
    return next((v for v in store.find(ValidationResult) if v.patch_id == patch_id), None)


def _merges_in_run(store: Store, run_id: int) -> int:
    if not run_id:
        return 0
    done = (DeploymentStatus.MERGED, DeploymentStatus.DEPLOYED, DeploymentStatus.REVERTED)
    return sum(
        d.mode == "merge" and d.status in done for d in store.find(Deployment, run_id=run_id)
    )


@HANDLERS.beat("loadValidationResults", "stage-crew")
def load_validation_results(baton: DeployBaton, ctx: BeatContext) -> DeployBaton:
    """Load patch, validation, anomaly and diagnosis; gather the facts the policy needs."""
    req, store = baton.request, ctx.store
    patch = req.patch or store.get(req.patch_id, Patch)
    if patch is None:
        raise ConfigError(f"no patch {req.patch_id!r} in {store.path}")
    validation = req.validation or _find_validation(store, patch.id)
    if validation is None:
        raise ConfigError(f"patch {patch.id} has no validation result; it cannot be delivered")
    anomaly = req.anomaly or store.get(patch.anomaly_id, Anomaly)
    diagnosis = req.diagnosis or store.get(patch.diagnosis_id, Diagnosis)
    repo = baton.repo
    target = ctx.config.target_branch or git.current_branch(repo)
    validated_at = validation.target_commit or patch.base_commit
    target_now = gitops.rev(repo, target) if target else ""
    proposals = gitops.open_proposals(repo, target or "HEAD")
    facts = Facts(
        confidence=anomaly.confidence if anomaly else 0.0,
        open_proposals=len(proposals),
        merges_this_run=_merges_in_run(store, req.run_id),
        dirty=git.is_dirty(repo),
        target_moved=bool(target_now) and target_now != validated_at and req.revalidate is None,
        duplicate_of=gitops.same_proposal(repo, proposals, patch.diff),
        uncommitted_base=bool(snapshot.snapshot_parent(repo, patch.base_commit)),
    )
    return dataclasses.replace(
        baton,
        patch=patch,
        validation=validation,
        anomaly=anomaly,
        diagnosis=diagnosis,
        facts=facts,
        target_branch=target,
        target_commit=validated_at,
    )


# 3 -------------------------------------------------------------------------------------
@HANDLERS.beat("checkApproval", "pure")
def check_approval_beat(baton: DeployBaton, ctx: BeatContext) -> DeployBaton:
    """Apply the policy; a refused proposal stops here, a refused merge still proposes."""
    assert baton.patch and baton.validation and baton.facts
    if baton.mode == "merge" and not baton.target_branch:
        approval = Approval(True, False, ("merge refused: HEAD is detached; set target_branch",))
    else:
        approval = check_approval(
            baton.mode, baton.patch, baton.validation, baton.facts, ctx.config
        )
    status = DeploymentStatus.APPROVED if approval.propose else DeploymentStatus.REJECTED
    return dataclasses.replace(
        baton, approval=approval, status=status, reasons=(*baton.reasons, *approval.reasons)
    )


def _proposing(baton: DeployBaton) -> bool:
    return bool(baton.approval and baton.approval.propose)


def _merging(baton: DeployBaton) -> bool:
    return bool(baton.approval and baton.approval.merge and baton.branch_commit)


# 4 -------------------------------------------------------------------------------------
@HANDLERS.beat("createBranch", "stage-crew")
def create_branch(baton: DeployBaton, ctx: BeatContext) -> DeployBaton:
    """Name the proposal branch; an existing branch for the same patch is reused."""
    if not _proposing(baton):
        return baton
    assert baton.patch
    a = baton.anomaly
    name = gitops.branch_name(a.subject if a else "", a.subtype if a else "", baton.patch.id)
    note = ""
    if baton.facts and baton.facts.duplicate_of:
        # Several anomalies with one cause give the same patch: one proposal serves them all.
        name, note = baton.facts.duplicate_of, " (the same change is already proposed there)"
    existing = gitops.rev(baton.repo, name) if gitops.branch_exists(baton.repo, name) else ""
    ctx.progress(f"selfheal: proposal branch {name}" + (note or (" (exists)" if existing else "")))
    return dataclasses.replace(baton, branch=name, branch_commit=existing)


# 5 -------------------------------------------------------------------------------------
def write_patch_file(root: Path, patch: Patch) -> Path:
    path = root / ".selfheal" / "patches" / f"{patch.id}.diff"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(patch.diff, encoding="utf-8")
    return path


@HANDLERS.beat("applyChanges", "stage-crew")
def apply_changes(baton: DeployBaton, ctx: BeatContext) -> DeployBaton:
    """Write the patch file and commit the patch on the branch, in a worktree."""
    if not _proposing(baton):
        _save(baton, ctx.store)
        return baton
    assert baton.patch
    patch_file = write_patch_file(ctx.config.root, baton.patch)
    sha = baton.branch_commit
    baton = _uncommitted_note(baton, ctx, patch_file)
    assert baton.patch and baton.validation
    if not sha:
        text = message.commit_message(baton.patch, baton.validation, baton.anomaly, baton.diagnosis)
        if baton.facts and baton.facts.uncommitted_base:
            # One more trailer, in the same block as the others.
            base = f"Selfheal-Base: uncommitted work, snapshot {baton.patch.base_commit}"
            text = text.rstrip("\n") + f"\n{base}\n"
        try:
            sha = gitops.commit_patch(
                baton.repo, baton.branch, baton.patch.base_commit, baton.patch.diff, text
            )
        except GitError as exc:
            failed = baton.refuse(f"could not commit the patch: {exc}", DeploymentStatus.FAILED)
            failed = dataclasses.replace(failed, approval=Approval(False, False), branch="")
            _save(failed, ctx.store)
            return failed
    done = dataclasses.replace(
        baton, branch_commit=sha, patch_file=str(patch_file), status=DeploymentStatus.PROPOSED
    )
    _save(done, ctx.store)
    return done


def _uncommitted_note(baton: DeployBaton, ctx: BeatContext, patch_file: Path) -> DeployBaton:
    """Say plainly when the base was uncommitted work: the branch then starts with a snapshot
    commit of the developer's changes, and the .diff (relative to their tree) is what to apply."""
    if not (baton.facts and baton.facts.uncommitted_base and baton.patch):
        return baton
    base = baton.patch.base_commit
    head = snapshot.snapshot_parent(baton.repo, base)
    note = (
        f"based on uncommitted work: {baton.branch} starts from snapshot {base[:12]} of the "
        f"working tree on HEAD {head[:12]}; apply {patch_file.name} to the working tree"
    )
    ctx.progress(f"selfheal: {note}")
    return dataclasses.replace(baton, reasons=(*baton.reasons, note))


# 6 -------------------------------------------------------------------------------------
@HANDLERS.beat("createPullRequest", "stage-crew")
def create_pull_request(baton: DeployBaton, ctx: BeatContext) -> DeployBaton:
    """In `pr` mode: push the branch and open a PR/MR whose body is the evidence."""
    if baton.mode != "pr" or not baton.branch_commit:
        return baton
    if baton.facts and baton.facts.uncommitted_base:
        # Pushing would publish the developer's uncommitted changes along with the fix.
        refused = baton.refuse("pull request not opened: the patch is based on uncommitted work")
        _save(refused, ctx.store)
        return refused
    assert baton.patch and baton.validation
    remote = ctx.config.deploy_remote
    spec = PullRequestSpec(
        title=message.title(baton.patch, baton.anomaly),
        body=message.markdown_body(baton.patch, baton.validation, baton.anomaly, baton.diagnosis),
        head=baton.branch,
        base=baton.target_branch or "main",
    )
    try:
        provider = choose_provider(ctx.config, gitops.remote_url(baton.repo, remote))
        gitops.push_branch(baton.repo, remote, baton.branch)
        pr = provider.open(baton.repo, spec)
    except (DeliveryError, GitError) as exc:
        failed = baton.refuse(f"pull request not opened: {exc}", DeploymentStatus.FAILED)
        _save(failed, ctx.store)
        return failed
    ctx.progress(f"selfheal: opened {pr.url or f'#{pr.number}'} with {pr.provider}")
    done = dataclasses.replace(baton, pr_number=pr.number, pr_url=pr.url)
    _save(done, ctx.store)
    return done


# 7 -------------------------------------------------------------------------------------
def _env(baton: DeployBaton, commit: str) -> dict[str, str]:
    a = baton.anomaly
    return {
        "SELFHEAL_BRANCH": baton.branch,
        "SELFHEAL_COMMIT": commit,
        "SELFHEAL_TARGET": baton.target_branch,
        "SELFHEAL_PATCH": baton.patch.id if baton.patch else "",
        "SELFHEAL_SUBJECT": a.subject if a else "",
        "SELFHEAL_TESTS": " ".join(a.tests) if a else "",
    }


@HANDLERS.beat("runCIChecks", "stage-crew")
def run_ci_checks(baton: DeployBaton, ctx: BeatContext) -> DeployBaton:
    """Before a merge: the project's CI command on the branch, in a worktree."""
    if not _merging(baton):
        return baton
    timeout = max(1.0, min(ctx.config.validation_timeout_s, ctx.remaining()))
    with gitops.worktree(baton.repo, baton.branch_commit) as wt:
        outcome = run_command(ctx.config.ci_command, wt, _env(baton, baton.branch_commit), timeout)
    ctx.progress(f"selfheal: CI {'passed' if outcome.ok else 'FAILED'}: {outcome.summary}")
    done = dataclasses.replace(baton, ci=outcome)
    if not outcome.ok:
        done = done.refuse(f"merge refused: CI failed: {outcome.summary}")
    return done


# 8 -------------------------------------------------------------------------------------
def _target_now(baton: DeployBaton, req: DeployRequest) -> tuple[str, str]:
    """The target's current sha and, when it moved and cannot be re-validated, why not."""
    assert baton.patch
    now = gitops.rev(baton.repo, baton.target_branch)
    if now == baton.target_commit:
        return now, ""
    if req.revalidate is None:
        return (
            now,
            f"merge refused: {baton.target_branch} moved since validation "
            f"({baton.target_commit[:12]} -> {now[:12]}); re-validate the patch",
        )
    again = req.revalidate(baton.patch, now)
    if not again.passed:
        return now, f"merge refused: re-validation on {now[:12]} failed: {'; '.join(again.reasons)}"
    return now, ""


@HANDLERS.beat("autoMergePR", "stage-crew")
def auto_merge(baton: DeployBaton, ctx: BeatContext) -> DeployBaton:
    """Merge only when policy and CI are green and the target is where validation saw it."""
    if not _merging(baton) or baton.ci is None or not baton.ci.ok:
        return baton
    target_sha, refusal = _target_now(baton, baton.request)
    if refusal:
        return baton.refuse(refusal)
    assert baton.patch
    text = f"Merge {baton.branch}: {message.title(baton.patch, baton.anomaly)}\n"
    try:
        sha = gitops.merge_commit(baton.repo, target_sha, baton.branch, text)
        gitops.advance_branch(baton.repo, baton.target_branch, sha, target_sha)
    except GitError as exc:
        return baton.refuse(f"merge refused: {exc}")
    ctx.progress(f"selfheal: merged {baton.branch} into {baton.target_branch} ({sha[:12]})")
    done = dataclasses.replace(baton, merge_commit=sha, status=DeploymentStatus.MERGED)
    _save(done, ctx.store)
    return done


# 9 -------------------------------------------------------------------------------------
def _revert(baton: DeployBaton, why: str) -> DeployBaton:
    """Undo the merge on the target with a revert commit; record why."""
    head = gitops.rev(baton.repo, baton.target_branch)
    text = f"Revert selfheal merge {baton.merge_commit[:12]}\n\n{why}\n"
    sha = gitops.revert_commit(baton.repo, head, baton.merge_commit, text)
    gitops.advance_branch(baton.repo, baton.target_branch, sha, head)
    return dataclasses.replace(
        baton.refuse(why, DeploymentStatus.REVERTED),
        revert_commit=sha,
        verification=VerificationStatus.FAILED,
    )


@HANDLERS.beat("deployToProduction", "stage-crew")
def deploy_to_production(baton: DeployBaton, ctx: BeatContext) -> DeployBaton:
    """The configured deploy command after a merge; its failure reverts the merge."""
    if not baton.merge_commit or not ctx.config.deploy_command:
        return baton
    timeout = max(1.0, min(ctx.config.validation_timeout_s, ctx.remaining()))
    outcome = run_command(
        ctx.config.deploy_command, baton.repo, _env(baton, baton.merge_commit), timeout
    )
    done = dataclasses.replace(baton, deploy=outcome)
    if not outcome.ok:
        return _revert(done, f"deploy failed: {outcome.summary}")
    return dataclasses.replace(done, status=DeploymentStatus.DEPLOYED)


# 10 ------------------------------------------------------------------------------------
@HANDLERS.beat("verifyDeployment", "stage-crew")
def verify_deployment(baton: DeployBaton, ctx: BeatContext) -> DeployBaton:
    """The verify command watches the subject after the merge; failure reverts. Persist."""
    done = baton
    if baton.merge_commit and baton.status is not DeploymentStatus.REVERTED:
        if ctx.config.verify_command:
            timeout = max(1.0, min(ctx.config.validation_timeout_s, ctx.remaining()))
            outcome = run_command(
                ctx.config.verify_command, baton.repo, _env(baton, baton.merge_commit), timeout
            )
            done = dataclasses.replace(baton, verify=outcome)
            if outcome.ok:
                done = dataclasses.replace(done, verification=VerificationStatus.PASSED)
            else:
                done = _revert(done, f"verification failed: {outcome.summary}")
        else:
            done = dataclasses.replace(baton, verification=VerificationStatus.SKIPPED)
    elif baton.status in (DeploymentStatus.REJECTED, DeploymentStatus.PROPOSED):
        done = dataclasses.replace(baton, verification=VerificationStatus.SKIPPED)
    if done.patch is not None:
        _save(done, ctx.store)
    return done


# 11 ------------------------------------------------------------------------------------
@HANDLERS.beat("deployCompleted", "pure")
def deploy_completed(baton: DeployBaton, ctx: BeatContext) -> DeployBaton:
    """Close with a short human summary of what was delivered and why not more."""
    lines = [f"delivery ({baton.mode}): {baton.status.value}"]
    if baton.patch_file:
        lines.append(f"patch file {baton.patch_file}")
    if baton.branch_commit:
        lines.append(f"branch {baton.branch} at {baton.branch_commit[:12]}")
    if baton.pr_url or baton.pr_number:
        lines.append(f"pull request {baton.pr_url or baton.pr_number}")
    if baton.merge_commit:
        lines.append(f"merged into {baton.target_branch} as {baton.merge_commit[:12]}")
    if baton.revert_commit:
        lines.append(f"reverted by {baton.revert_commit[:12]}")
    lines += [f"  {r}" for r in baton.reasons]
    for line in lines:
        ctx.progress(f"selfheal: {line}")
    return dataclasses.replace(baton, summary=tuple(lines))
