"""The git wrappers behind scratch worktrees: symlinks of a tree, apply, reset, hooks off."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import git as g
from agent.errors import GitError
from conftest import git

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
