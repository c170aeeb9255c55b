"""Snapshots of uncommitted work: real repositories, the checkout left exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.snapshot import snapshot_parent, working_state
from conftest import git


def test_a_clean_tree_is_head(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"m.py": "x = 1\n"})
    (repo / ".selfheal").mkdir()
    (repo / ".selfheal" / "selfheal.db").write_text("state", encoding="utf-8")
    state = working_state(repo)
    assert state.commit == state.head == git(repo, "rev-parse", "HEAD").strip()
    assert not state.uncommitted
    assert snapshot_parent(repo, state.commit) == ""


def test_uncommitted_work_becomes_a_commit_on_head(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"m.py": "x = 1\n", "gone.py": "y = 2\n", ".gitignore": ".selfheal/\n"})
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo / "m.py").write_text("x = 2\n", encoding="utf-8")
    (repo / "gone.py").unlink()
    (repo / "new.py").write_text("z = 3\n", encoding="utf-8")
    (repo / "staged.py").write_text("s = 4\n", encoding="utf-8")
    (repo / ".selfheal").mkdir()
    (repo / ".selfheal" / "selfheal.db").write_text("state", encoding="utf-8")
    git(repo, "add", "staged.py")
    (repo / "pkg" / "__pycache__").mkdir(parents=True)
    (repo / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    untouched = (git(repo, "status", "--porcelain"), git(repo, "diff", "--cached"))
    state = working_state(repo)
    assert state.uncommitted and state.head == head
    assert snapshot_parent(repo, state.commit) == head
    files = set(git(repo, "ls-tree", "-r", "--name-only", state.commit).split())
    # Deletions too; neither bytecode nor selfheal's own state, ignored or not.
    assert files == {".gitignore", "m.py", "new.py", "staged.py"}
    assert git(repo, "show", f"{state.commit}:m.py") == "x = 2\n"
    # The same working state gives the same sha; nothing the developer sees has changed.
    assert working_state(repo).commit == state.commit
    assert (git(repo, "status", "--porcelain"), git(repo, "diff", "--cached")) == untouched
    assert git(repo, "stash", "list") == ""
    assert git(repo, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/main"]
