"""Thin, typed wrappers over the git command line; every failure becomes a GitError."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.errors import GitError

# Commits made by selfheal carry this identity unless the repository configures its own.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "pytest-selfheal",
    "GIT_AUTHOR_EMAIL": "selfheal@localhost",
    "GIT_COMMITTER_NAME": "pytest-selfheal",
    "GIT_COMMITTER_EMAIL": "selfheal@localhost",
}


def run_git(
    cwd: Path,
    *args: str,
    check: bool = True,
    input_text: str | None = None,
    timeout: float = 120.0,
    identity: bool = False,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run `git args` in cwd and return stdout; a non-zero exit raises GitError.

    `env`: extra environment variables for this call only (never os.environ: validation runs
    git on other threads, which must not see, say, a temporary index).
    """
    full = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})}
    if identity:
        full = {**_IDENTITY, **full}
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=input_text,
            capture_output=True,
            text=True,
            env=full,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {' '.join(args)} timed out after {timeout:.0f}s in {cwd}") from None
    except OSError as exc:
        raise GitError(f"git {' '.join(args)} in {cwd}: {exc}") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {detail[-1] if detail else ''}")
    return proc.stdout


def toplevel(path: Path) -> Path | None:
    """The repository root containing `path`, or None outside a repository."""
    try:
        out = run_git(path, "rev-parse", "--show-toplevel")
    except GitError:
        return None
    return Path(out.strip())


def head_commit(repo: Path) -> str:
    """The full sha of HEAD, or '' in a repository without commits."""
    try:
        return run_git(repo, "rev-parse", "--verify", "-q", "HEAD").strip()
    except GitError:
        return ""


def is_dirty(repo: Path) -> bool:
    """True when tracked files differ from HEAD (untracked files do not count)."""
    return bool(run_git(repo, "status", "--porcelain", "--untracked-files=no").strip())


def current_branch(repo: Path) -> str:
    """The checked-out branch name, or '' when HEAD is detached."""
    return (
        run_git(repo, "rev-parse", "--abbrev-ref", "HEAD", check=False).strip().replace("HEAD", "")
    )


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parents: tuple[str, ...]
    author_ns: int
    subject: str


def commits_between(repo: Path, base: str, head: str = "HEAD") -> list[CommitInfo]:
    """Commits reachable from head and not from base, oldest first (first-parent line)."""
    out = run_git(
        repo,
        "log",
        "--first-parent",
        "--reverse",
        "--format=%H%x00%P%x00%at%x00%s",
        f"{base}..{head}",
    )
    result = []
    for line in out.splitlines():
        sha, parents, at, subject = line.split("\x00", 3)
        result.append(CommitInfo(sha, tuple(parents.split()), int(at) * 1_000_000_000, subject))
    return result


def changed_lines(repo: Path, base: str, head: str | None = None) -> dict[str, set[int]]:
    """Lines added or changed since `base` (in the working tree when head is None), per file."""
    from unidiff.patch import PatchSet

    args = ["diff", "--no-color", "--no-ext-diff", "-U0", base]
    if head is not None:
        args.append(head)
    result: dict[str, set[int]] = {}
    for pfile in PatchSet(run_git(repo, *args)):
        if pfile.is_removed_file:
            continue
        lines = {ln.target_line_no for h in pfile for ln in h if ln.is_added and ln.target_line_no}
        if lines:
            result[pfile.path] = lines
    return result


def add_worktree(repo: Path, path: Path, commit: str = "HEAD") -> Path:
    """A detached worktree of `commit` at `path`; the developer's checkout is not touched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    run_git(repo, "worktree", "add", "--detach", "--force", str(path), commit)
    return path


def remove_worktree(repo: Path, path: Path) -> None:
    """Remove a worktree made by add_worktree, and prune stale entries of crashed runs."""
    run_git(repo, "worktree", "remove", "--force", str(path), check=False)
    run_git(repo, "worktree", "prune", check=False)


def diff_worktree(worktree: Path) -> str:
    """`git diff` of everything changed in a worktree against its HEAD, new files included."""
    run_git(worktree, "add", "-A", "--intent-to-add")
    return run_git(worktree, "diff", "--no-color", "--no-ext-diff", "--binary", "HEAD")


# Scratch worktrees for validation -------------------------------------------------------
# Hooks are switched off: checking out a scratch copy must not run the developer's hooks.
_NO_HOOKS = ("-c", "core.hooksPath=/dev/null")


def add_scratch_worktree(repo: Path, path: Path, commit: str) -> Path:
    """A detached worktree of `commit` at `path`, made without running any git hook."""
    path.parent.mkdir(parents=True, exist_ok=True)
    run_git(repo, *_NO_HOOKS, "worktree", "add", "--detach", "--force", str(path), commit)
    return path


def list_worktrees(repo: Path) -> list[Path]:
    """Paths of every worktree git knows for `repo`, the main one included."""
    out = run_git(repo, "worktree", "list", "--porcelain")
    prefix = "worktree "
    return [Path(line[len(prefix) :]) for line in out.splitlines() if line.startswith(prefix)]


def tracked_symlinks(repo: Path, commit: str) -> set[str]:
    """Paths that are symbolic links (mode 120000) in the tree of `commit`."""
    out = run_git(repo, "ls-tree", "-r", "-z", "--full-tree", commit)
    links: set[str] = set()
    for entry in out.split("\x00"):
        meta, _, name = entry.partition("\t")
        if meta.startswith("120000 "):
            links.add(name)
    return links


def apply_patch(worktree: Path, diff: str, *, check_only: bool = False) -> None:
    """`git apply` a unified diff to a worktree's files (not its index); GitError on conflict."""
    args = ["apply", "-p1", "--whitespace=nowarn"]
    if check_only:
        args.append("--check")
    run_git(worktree, *_NO_HOOKS, *args, "-", input_text=diff)


def reset_scratch_worktree(worktree: Path) -> None:
    """Put a scratch worktree back to its HEAD: tracked files restored, untracked removed."""
    run_git(worktree, *_NO_HOOKS, "checkout", "--force", "--quiet", "HEAD", "--", ".")
    run_git(worktree, "clean", "-fdxq")
