"""Find, from git history alone, whether and where a patch landed: ours merged, applied by hand,
cherry-picked or squashed — and whether it is still there."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent import git
from agent.errors import GitError
from agent.phases.deployment.message import TRAILER_PATCH

MAX_COMMITS = 500  # how far back from HEAD the content search looks


@dataclass(frozen=True)
class Applied:
    patch_id: str
    commit: str  # the first commit on HEAD's line that carries the patch
    applied_ns: int  # that commit's committer time
    how: str  # trailer | patch-id | content
    present: bool  # the patch's content is still in HEAD


def _patch_id(repo: Path, diff: str) -> str:
    out = git.run_git(repo, "patch-id", "--stable", input_text=diff)
    return out.split()[0] if out.strip() else ""


def _commit_ns(repo: Path, commit: str) -> int:
    return int(git.run_git(repo, "show", "-s", "--format=%ct", commit).strip()) * 1_000_000_000


def present_in(repo: Path, commit: str, diff: str) -> bool:
    """True when `diff` is already in `commit`'s tree (it reverse-applies), checked in a
    throwaway index so neither the checkout nor the real index is touched."""
    with tempfile.TemporaryDirectory(prefix="selfheal-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index"), "LC_ALL": "C"}
        read = subprocess.run(
            ["git", "read-tree", commit], cwd=repo, env=env, capture_output=True, check=False
        )
        if read.returncode != 0:
            return False
        check = subprocess.run(
            ["git", "apply", "--cached", "--reverse", "--check", "-"],
            cwd=repo,
            env=env,
            input=diff.encode(),
            capture_output=True,
            check=False,
        )
        return check.returncode == 0


def _by_trailer(repo: Path, patch_id: str, head: str) -> str:
    out = git.run_git(
        repo, "log", "--format=%H", "--fixed-strings", f"--grep={TRAILER_PATCH}: {patch_id}", head
    )
    shas = out.split()
    return shas[-1] if shas else ""  # the oldest: where it first landed


def _by_patch_id(repo: Path, base: str, head: str, wanted: str) -> str:
    log = git.run_git(
        repo,
        "log",
        "--reverse",
        "--no-merges",
        "-p",
        "--format=commit %H",
        f"{base}..{head}",
        check=False,
    )
    if not log.strip() or not wanted:
        return ""
    for line in git.run_git(repo, "patch-id", "--stable", input_text=log).splitlines():
        pid, sha = line.split()
        if pid == wanted:
            return sha
    return ""


def _by_content(repo: Path, base: str, head: str, diff: str) -> str:
    """The oldest commit after base, on HEAD's first-parent line, whose tree holds the patch."""
    commits = git.commits_between(repo, base, head)[-MAX_COMMITS:]
    first = ""
    for info in reversed(commits):  # newest first; stop at the first tree without it
        if not present_in(repo, info.sha, diff):
            break
        first = info.sha
    return first


def find_applied(
    repo: Path, patch_id: str, diff: str, base: str, head: str = "HEAD"
) -> Applied | None:
    """Where the patch landed on `head`'s history, or None when it never did."""
    head_sha = git.run_git(repo, "rev-parse", "--verify", "-q", head, check=False).strip()
    if not head_sha or not is_ancestor(repo, base, head_sha):
        return None
    present = present_in(repo, head_sha, diff)
    for how, sha in (
        ("trailer", _by_trailer(repo, patch_id, head_sha)),
        ("patch-id", _by_patch_id(repo, base, head_sha, _patch_id(repo, diff))),
        ("content", _by_content(repo, base, head_sha, diff) if present else ""),
    ):
        if sha:
            return Applied(patch_id, sha, _commit_ns(repo, sha), how, present)
    return None


def is_ancestor(repo: Path, ancestor: str, commit: str) -> bool:
    """True when `ancestor` is in `commit`'s history (unknown commits count as not)."""
    if not ancestor or not commit:
        return False
    try:
        git.run_git(repo, "merge-base", "--is-ancestor", ancestor, commit)
    except GitError:
        return False
    return True
