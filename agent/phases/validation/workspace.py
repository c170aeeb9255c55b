"""Scratch worktrees under .selfheal/worktrees/: made per candidate, removed after, pruned."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from agent import git
from agent.errors import GitError, PatchError

WORKTREES = "worktrees"
_GITIGNORE = "# Created by pytest-selfheal: its store, patches and worktrees stay local.\n*\n"


def worktrees_dir(root: Path) -> Path:
    return root / ".selfheal" / WORKTREES


def _ensure_selfheal_dir(root: Path) -> None:
    # The .gitignore keeps our directory out of the developer's `git status`.
    directory = root / ".selfheal"
    directory.mkdir(exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(_GITIGNORE, encoding="utf-8")


def prune_stale(root: Path) -> list[Path]:
    """Remove worktrees left by crashed runs (owner process gone) and git's stale entries."""
    directory = worktrees_dir(root)
    removed: list[Path] = []
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if _owner_alive(path):
                continue  # another live validation is using it
            git.remove_worktree(root, path)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    git.run_git(root, "worktree", "prune", check=False)
    return removed


def _owner_alive(path: Path) -> bool:
    """Worktree names end in the pid of the process that made them."""
    try:
        pid = int(path.name.rsplit("-", 1)[-1])
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Worktree:
    """One detached scratch worktree at a base commit; a context manager that removes it."""

    def __init__(self, root: Path, commit: str, label: str = "candidate") -> None:
        self.root = root
        self.commit = commit
        safe = "".join(ch if ch.isalnum() else "-" for ch in label)[:40]
        self.path = worktrees_dir(root) / f"{safe}-{uuid.uuid4().hex[:8]}-{os.getpid()}"
        self._open = False

    def __enter__(self) -> Worktree:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> Worktree:
        _ensure_selfheal_dir(self.root)
        git.add_scratch_worktree(self.root, self.path, self.commit)
        self._open = True
        return self

    def close(self) -> None:
        if self._open or self.path.exists():
            git.remove_worktree(self.root, self.path)
            shutil.rmtree(self.path, ignore_errors=True)
        self._open = False

    def apply(self, diff: str) -> None:
        """`git apply --check`, then apply; a conflict is a PatchError naming the reason."""
        try:
            git.apply_patch(self.path, diff, check_only=True)
        except GitError as exc:
            raise PatchError(f"patch does not apply to {self.commit[:12]}: {_tail(exc)}") from None
        git.apply_patch(self.path, diff)

    def reset(self) -> None:
        """Back to the base commit, so the worktree can take the next candidate."""
        git.reset_scratch_worktree(self.path)


def _tail(exc: GitError) -> str:
    return str(exc).rsplit(": ", 1)[-1]
