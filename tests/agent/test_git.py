"""The git wrappers behind scratch worktrees: symlinks of a tree, apply, reset, hooks off."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import git as g
from agent.errors import GitError

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
}


def git(repo: Path, *args: str) -> str:
    """git in `repo` with a fixed identity (local: `conftest` is ambiguous across test dirs)."""
    proc = subprocess.run(
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
        check=False,
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


FIX = "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"


def test_tracked_symlinks_lists_mode_120000_entries(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"m.py": "x = 1\n", "sub/a.py": ""})
    os.symlink("/etc", repo / "escape")
    os.symlink("m.py", repo / "sub" / "alias.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "links")
    assert g.tracked_symlinks(repo, "HEAD") == {"escape", "sub/alias.py"}


def test_apply_check_apply_and_reset_in_a_scratch_worktree(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo({"m.py": "x = 1\n"})
    # A hook that would leave a trace if git ran it on checkout.
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path / 'hook-ran'}\n", encoding="utf-8")
    hook.chmod(0o755)
    wt = g.add_scratch_worktree(repo, tmp_path / "wt", "HEAD")
    try:
        assert not (tmp_path / "hook-ran").exists()
        assert wt in [p.resolve() for p in g.list_worktrees(repo)]
        g.apply_patch(wt, FIX, check_only=True)
        assert (wt / "m.py").read_text() == "x = 1\n"
        g.apply_patch(wt, FIX)
        assert (wt / "m.py").read_text() == "x = 2\n"
        with pytest.raises(GitError):
            g.apply_patch(wt, FIX, check_only=True)  # already applied: does not apply again
        (wt / "new.txt").write_text("scratch")
        g.reset_scratch_worktree(wt)
        assert (wt / "m.py").read_text() == "x = 1\n" and not (wt / "new.txt").exists()
        assert (repo / "m.py").read_text() == "x = 1\n"
    finally:
        g.remove_worktree(repo, wt)
    assert not wt.exists()
