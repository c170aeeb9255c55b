"""Git operations of delivery: proposal branches, merges and reverts, all made in worktrees."""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agent import git
from agent.errors import GitError

BRANCH_PREFIX = "selfheal/"


def branch_name(anomaly_subject: str, anomaly_subtype: str, patch_id: str) -> str:
    """`selfheal/<anomaly>-<id>`: a readable slug of the anomaly and the patch id's prefix."""
    leaf = re.split(r"[/:]+", anomaly_subject.rstrip("/:"))[-1] if anomaly_subject else ""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{anomaly_subtype}-{leaf}").strip("-").lower()
    short = re.sub(r"[^A-Za-z0-9]", "", patch_id.rsplit("-", 1)[-1])[:8] or "patch"
    return f"{BRANCH_PREFIX}{slug[:48].strip('-') or 'patch'}-{short}"


@contextlib.contextmanager
def worktree(repo: Path, commit: str) -> Iterator[Path]:
    """A detached scratch worktree under `.selfheal/worktrees`, removed afterwards."""
    base = repo / ".selfheal" / "worktrees"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="deploy-", dir=base))
    path.rmdir()  # git worktree add wants to create the directory itself
    git.add_worktree(repo, path, commit)
    try:
        yield path
    finally:
        git.remove_worktree(repo, path)
        shutil.rmtree(path, ignore_errors=True)


def branch_exists(repo: Path, branch: str) -> bool:
    return bool(git.run_git(repo, "branch", "--list", branch).strip())


def rev(repo: Path, ref: str) -> str:
    """The full sha of `ref`, or '' when it does not resolve."""
    out = git.run_git(repo, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
    return out.strip()


def commit_patch(repo: Path, branch: str, base: str, diff: str, message: str) -> str:
    """Create `branch` at `base` holding one commit that applies `diff`; returns its sha."""
    with worktree(repo, base) as wt:
        git.run_git(wt, "apply", "--check", "--whitespace=nowarn", input_text=diff)
        git.run_git(wt, "apply", "--index", "--whitespace=nowarn", input_text=diff)
        git.run_git(wt, "commit", "-q", "--no-verify", "-F", "-", input_text=message, identity=True)
        sha = git.head_commit(wt)
    # The ref is written only once the commit exists, so a failure leaves no half branch.
    git.run_git(repo, "branch", branch, sha)
    return sha


def open_proposals(repo: Path, target: str, exclude: str = "") -> list[str]:
    """Our branches not yet merged into `target` (a deleted branch is a closed proposal)."""
    out = git.run_git(
        repo,
        "branch",
        "--list",
        f"{BRANCH_PREFIX}*",
        "--no-merged",
        target,
        "--format=%(refname:short)",
    )
    return [b for b in out.split() if b and b != exclude]


def patch_id(repo: Path, diff: str) -> str:
    """git's stable patch-id of a diff: equal for the same change whatever its context."""
    out = git.run_git(repo, "patch-id", "--stable", input_text=diff)
    return out.split()[0] if out.strip() else ""


def same_proposal(repo: Path, branches: list[str], diff: str) -> str:
    """The open proposal branch whose tip commit makes exactly this change, or ''."""
    wanted = patch_id(repo, diff)
    for branch in branches:
        shown = git.run_git(repo, "show", "--format=", "--no-color", branch)
        if wanted and patch_id(repo, shown) == wanted:
            return branch
    return ""


def checked_out_in(repo: Path, branch: str) -> Path | None:
    """The worktree (the developer's checkout or another) where `branch` is checked out."""
    current: Path | None = None
    for line in git.run_git(repo, "worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            current = Path(line.split(" ", 1)[1])
        elif line == f"branch refs/heads/{branch}" and current is not None:
            return current
    return None


def advance_branch(repo: Path, branch: str, new: str, old: str) -> None:
    """Move `branch` from `old` to `new` only if it still points at `old`.

    When the branch is checked out, its working tree must be clean and is fast-forwarded
    with it (so the checkout never looks dirty); otherwise the ref is compare-and-swapped.
    """
    where = checked_out_in(repo, branch)
    if where is None:
        git.run_git(repo, "update-ref", f"refs/heads/{branch}", new, old)
        return
    if git.is_dirty(where):
        raise GitError(f"{where}: {branch} is checked out with local changes; not moving it")
    if rev(where, "HEAD") != old:
        raise GitError(f"{branch} moved to {rev(where, 'HEAD')[:12]} (expected {old[:12]})")
    git.run_git(where, "merge", "--ff-only", "-q", new)


def merge_commit(repo: Path, target_sha: str, branch: str, message: str) -> str:
    """A `--no-ff` merge of `branch` onto `target_sha`, made in a worktree; returns its sha."""
    with worktree(repo, target_sha) as wt:
        git.run_git(wt, "merge", "--no-ff", "-q", "-m", message, branch, identity=True)
        return git.head_commit(wt)


def revert_commit(repo: Path, head: str, commit: str, message: str) -> str:
    """A commit on top of `head` undoing `commit` (mainline 1 for a merge); returns its sha."""
    parents = git.run_git(repo, "rev-list", "--parents", "-n", "1", commit).split()[1:]
    with worktree(repo, head) as wt:
        args = ["revert", "--no-edit", "--no-commit"]
        if len(parents) > 1:
            args += ["-m", "1"]
        git.run_git(wt, *args, commit, identity=True)
        git.run_git(wt, "commit", "-q", "--no-verify", "-F", "-", input_text=message, identity=True)
        return git.head_commit(wt)


def push_branch(repo: Path, remote: str, branch: str) -> None:
    git.run_git(repo, "push", "-q", remote, f"refs/heads/{branch}:refs/heads/{branch}")


def remote_url(repo: Path, remote: str) -> str:
    return git.run_git(repo, "remote", "get-url", remote, check=False).strip()
