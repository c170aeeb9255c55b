"""Delivery against real git repositories (a bare repo as the remote) and a fake GitHub API."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from agent import git as agit
from agent.config import Config
from agent.errors import BeatError
from agent.phases.deployment import HANDLERS, DeployBaton, DeployRequest
from agent.records import Deployment, DeploymentStatus, Patch, ValidationResult
from agent.snapshot import working_state
from agent.store import Store
from tests.agent.phases.delivery_kit import (
    BUGGY,
    FIXED,
    FakeAPI,
    anomaly,
    commit_files,
    conductor,
    config,
    diagnosis,
    git,
    make_patch,
    project,
    validated,
    with_remote,
)

PY = sys.executable
CI_OK = f"{PY} -m pytest -q -p no:cacheprovider -p no:selfheal"


def deliver(
    cfg: Config,
    tmp_path: Path,
    patch: Patch,
    validation: ValidationResult | None = None,
    **req: Any,
) -> DeployBaton:
    request = DeployRequest(
        patch=patch,
        validation=validation or validated(patch),
        anomaly=req.pop("anomaly_", anomaly(commit=patch.base_commit)),
        diagnosis=diagnosis(patch.base_commit),
        **req,
    )
    with conductor(cfg, tmp_path, HANDLERS, names=("deployment.deploy.json",)) as c:
        baton: DeployBaton = c.play("deployment.deploy", DeployBaton(request))
    return baton


def snapshot(repo: Path) -> tuple[str, str, str, str]:
    return (
        agit.head_commit(repo),
        git(repo, "status", "--porcelain"),
        (repo / "calc.py").read_text(),
        git(repo, "rev-parse", "main"),
    )


def stored(cfg: Config, dep_id: str) -> Deployment:
    with Store.open(cfg.store) as s:
        found = s.get(dep_id, Deployment)
    assert found is not None
    return found


def test_propose_makes_branch_with_one_explained_commit_and_leaves_checkout(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = project(make_repo)
    (repo / "test_calc.py").write_text("# a developer's unsaved work\n")  # dirty on purpose
    before = snapshot(repo)
    patch = make_patch(repo)
    cfg = config(repo)
    baton = deliver(cfg, tmp_path, patch)

    assert baton.status is DeploymentStatus.PROPOSED, baton.reasons
    assert baton.branch.startswith("selfheal/new-failure-test-total-")
    assert snapshot(repo) == before
    assert git(repo, "rev-list", "--count", f"main..{baton.branch}").strip() == "1"
    msg = git(repo, "log", "-1", "--format=%B", baton.branch)
    for part in (
        "Anomaly: error/new_failure",
        "Cause: changed return in total",
        "Strategy: partial_revert",
        "Evidence:",
        "2 passed",
        f"Selfheal-Patch: {patch.id}",
    ):
        assert part in msg
    assert git(repo, "show", f"{baton.branch}:calc.py") == FIXED
    assert Path(baton.patch_file).read_text() == patch.diff
    assert stored(cfg, baton.deployment_id).status is DeploymentStatus.PROPOSED
    assert not list((repo / ".selfheal" / "worktrees").iterdir())


def test_propose_refuses_unvalidated_patch_and_full_proposal_queue(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = project(make_repo)
    patch = make_patch(repo)
    bad = deliver(config(repo), tmp_path, patch, validated(patch, passed=False))
    assert bad.status is DeploymentStatus.REJECTED
    assert "did not pass validation" in bad.reasons[0]
    assert git(repo, "branch", "--list", "selfheal/*") == ""

    cfg = config(repo, max_open_proposals=1)
    first = deliver(cfg, tmp_path, make_patch(repo))
    assert first.status is DeploymentStatus.PROPOSED
    second = deliver(cfg, tmp_path, make_patch(repo, FIXED + "\n"))
    assert second.status is DeploymentStatus.REJECTED
    assert "1 proposals already open" in second.reasons[0]


def test_off_and_bad_mode(make_repo: Any, tmp_path: Path) -> None:
    repo = project(make_repo)
    patch = make_patch(repo)
    off = deliver(config(repo, deploy="off"), tmp_path, patch)
    assert off.status is DeploymentStatus.REJECTED and not off.branch
    with pytest.raises(BeatError, match="deploy mode 'sideways'"):
        deliver(config(repo), tmp_path, patch, mode="sideways")


def test_pr_pushes_branch_and_sends_expected_request(
    make_repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = project(make_repo)
    bare = with_remote(repo)
    patch = make_patch(repo)
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    with FakeAPI() as api:
        cfg = config(
            repo,
            deploy="pr",
            pr_provider="github",
            github_api_url=api.url + "/api/v3",
            github_repo="acme/app",
        )
        baton = deliver(cfg, tmp_path, patch)
    assert baton.status is DeploymentStatus.PROPOSED, baton.reasons
    assert (baton.pr_number, baton.pr_url) == (42, "http://127.0.0.1/acme/app/pull/42")
    (req,) = api.requests
    assert req["path"] == "/api/v3/repos/acme/app/pulls"
    assert req["headers"]["Authorization"] == "Bearer t0ken"
    body = req["json"]
    assert (body["head"], body["base"]) == (baton.branch, "main")
    assert body["title"] == "selfheal: fix new failure in test_calc.py::test_total"
    assert "## Evidence" in body["body"] and "```diff" in body["body"]
    remote_sha = git(bare, "rev-parse", baton.branch).strip()
    assert remote_sha == baton.branch_commit
    assert stored(cfg, baton.deployment_id).pr_number == 42


def test_pr_api_error_is_recorded_not_raised(
    make_repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = project(make_repo)
    with_remote(repo)
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    with FakeAPI(status=422, reply={"message": "Validation Failed"}) as api:
        cfg = config(
            repo, deploy="pr", pr_provider="github", github_api_url=api.url, github_repo="acme/app"
        )
        baton = deliver(cfg, tmp_path, make_patch(repo))
    assert baton.status is DeploymentStatus.FAILED
    assert "422" in baton.reasons[-1] and "Validation Failed" in baton.reasons[-1]
    assert baton.branch_commit  # the local proposal stays


def test_merge_when_all_gates_green_fast_forwards_clean_checkout(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = project(make_repo)
    patch = make_patch(repo)
    marker = tmp_path / "deployed.txt"
    cfg = config(
        repo,
        deploy="merge",
        ci_command=CI_OK,
        deploy_command=f"echo $SELFHEAL_COMMIT > {marker}",
        verify_command=f"{PY} -c 'import calc; assert calc.total([1]) == 1'",
    )
    baton = deliver(cfg, tmp_path, patch, run_id=7)
    assert baton.status is DeploymentStatus.DEPLOYED, baton.reasons
    assert baton.ci is not None and baton.ci.ok
    assert git(repo, "rev-parse", "main").strip() == baton.merge_commit
    assert (repo / "calc.py").read_text() == FIXED
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert marker.read_text().strip() == baton.merge_commit
    assert stored(cfg, baton.deployment_id).verification.value == "passed"

    # At most one merge per run: a second patch in run 7 is only proposed.
    again = deliver(cfg, tmp_path, make_patch(repo, FIXED + "# tidy\n"), run_id=7)
    assert again.status is DeploymentStatus.PROPOSED
    assert any("one merge per run" in r for r in again.reasons)


def _refused_merge(baton: DeployBaton, repo: Path, main_before: str, why: str) -> None:
    assert baton.status is DeploymentStatus.PROPOSED
    assert not baton.merge_commit
    assert any(why in r for r in baton.reasons), baton.reasons
    assert git(repo, "rev-parse", "main").strip() == main_before


def test_merge_refuses_when_target_moved(make_repo: Any, tmp_path: Path) -> None:
    repo = project(make_repo)
    patch = make_patch(repo)
    moved = commit_files(repo, {"README": "someone else's work\n"}, "unrelated change")
    baton = deliver(config(repo, deploy="merge", ci_command=CI_OK), tmp_path, patch)
    _refused_merge(baton, repo, moved, "moved since validation")


def test_merge_revalidates_when_target_moved(make_repo: Any, tmp_path: Path) -> None:
    repo = project(make_repo)
    patch = make_patch(repo)
    moved = commit_files(repo, {"README": "someone else's work\n"}, "unrelated change")
    seen: list[str] = []

    def revalidate(p: Patch, target: str) -> ValidationResult:
        seen.append(target)
        return validated(p, target=target)

    baton = deliver(
        config(repo, deploy="merge", ci_command=CI_OK), tmp_path, patch, revalidate=revalidate
    )
    assert seen == [moved]
    assert baton.status is DeploymentStatus.MERGED, baton.reasons
    assert (repo / "README").exists() and (repo / "calc.py").read_text() == FIXED


def test_merge_refuses_when_ci_fails(make_repo: Any, tmp_path: Path) -> None:
    repo = project(make_repo)
    patch = make_patch(repo)
    head = agit.head_commit(repo)
    ci = f"{PY} -c 'import sys; print(\"lint: 3 errors\"); sys.exit(3)'"
    baton = deliver(config(repo, deploy="merge", ci_command=ci), tmp_path, patch)
    _refused_merge(baton, repo, head, "CI failed")
    assert "exit 3: lint: 3 errors" in baton.reasons[-1]


def test_merge_refuses_below_min_confidence(make_repo: Any, tmp_path: Path) -> None:
    repo = project(make_repo)
    patch = make_patch(repo)
    head = agit.head_commit(repo)
    cfg = config(repo, deploy="merge", ci_command=CI_OK, min_confidence=0.9)
    baton = deliver(cfg, tmp_path, patch, anomaly_=anomaly(confidence=0.6))
    _refused_merge(baton, repo, head, "confidence 0.60 below min_confidence=0.90")
    assert baton.ci is None  # CI is not even started when the policy says no


def test_merge_refuses_on_dirty_tree(make_repo: Any, tmp_path: Path) -> None:
    repo = project(make_repo)
    patch = make_patch(repo)
    head = agit.head_commit(repo)
    (repo / "calc.py").write_text(BUGGY + "# wip\n")
    baton = deliver(config(repo, deploy="merge", ci_command=CI_OK), tmp_path, patch)
    _refused_merge(baton, repo, head, "uncommitted changes")
    assert (repo / "calc.py").read_text() == BUGGY + "# wip\n"


def test_a_patch_on_uncommitted_work_is_proposed_from_its_snapshot_never_merged(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = project(make_repo)
    head = agit.head_commit(repo)
    (repo / "notes.txt").write_text("wip\n")  # untracked: the tree is not "dirty" for git
    state = working_state(repo)
    patch = dataclasses.replace(make_patch(repo), base_commit=state.commit)
    baton = deliver(config(repo, deploy="merge", ci_command=CI_OK), tmp_path, patch)
    _refused_merge(baton, repo, head, "based on uncommitted work, not on a commit")
    assert any(f"starts from snapshot {state.commit[:12]}" in r for r in baton.reasons)
    log = git(repo, "log", "--format=%H %s", baton.branch).splitlines()
    assert log[1] == f"{state.commit} selfheal: snapshot of uncommitted work"
    assert "Selfheal-Base: uncommitted work" in git(repo, "log", "-1", "--format=%B", baton.branch)


def test_failed_verify_reverts_the_merge(make_repo: Any, tmp_path: Path) -> None:
    repo = project(make_repo)
    patch = make_patch(repo)
    verify = f"{PY} -c 'import sys; print(\"p95 latency 900 ms\"); sys.exit(1)'"
    cfg = config(repo, deploy="merge", ci_command=CI_OK, verify_command=verify)
    baton = deliver(cfg, tmp_path, patch)
    assert baton.status is DeploymentStatus.REVERTED
    assert baton.merge_commit and baton.revert_commit
    assert git(repo, "rev-parse", "main").strip() == baton.revert_commit
    assert git(repo, "rev-parse", "main^").strip() == baton.merge_commit
    assert (repo / "calc.py").read_text() == BUGGY
    record = stored(cfg, baton.deployment_id)
    assert record.status is DeploymentStatus.REVERTED
    assert record.verification.value == "failed"
    assert "verification failed" in record.reason and "p95 latency 900 ms" in record.reason


def test_same_change_for_another_anomaly_reuses_the_open_proposal(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = project(make_repo)
    cfg = config(repo, max_open_proposals=1)
    first = deliver(cfg, tmp_path, make_patch(repo))
    second = deliver(cfg, tmp_path, make_patch(repo))  # another id, the very same change
    assert second.status is DeploymentStatus.PROPOSED, second.reasons
    assert (second.branch, second.branch_commit) == (first.branch, first.branch_commit)
    assert git(repo, "branch", "--list", "selfheal/*").split() == [first.branch]
