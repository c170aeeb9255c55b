"""The developer's uncommitted work as a commit object, made without touching their checkout."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent import git
from agent.errors import GitError

SNAPSHOT_SUBJECT = "selfheal: snapshot of uncommitted work"
_TIMEOUT_S = 300.0  # adding a large working tree to a temporary index can take a while
# Never part of the project even when a repository forgets to ignore them: selfheal's own
# state, bytecode and tool caches, virtual environments. Given to git as extra ignore rules
# (an exclude pathspec would make `git add` fail on paths .gitignore already ignores).
_IGNORE = (
    "/.selfheal/",
    "__pycache__/",
    "*.py[co]",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    "*.egg-info/",
    "/.venv/",
    "/venv/",
    "/.tox/",
)


@dataclass(frozen=True)
class WorkingState:
    """`commit` is what the working tree holds: HEAD itself, or a snapshot whose parent is HEAD."""

    commit: str
    head: str

    @property
    def uncommitted(self) -> bool:
        return self.commit != self.head


def working_state(repo: Path) -> WorkingState:
    """HEAD when the tree matches it; otherwise a commit of the tree as it is on disk.

    The snapshot is built in a temporary index (a copy of the real one, so git's stat cache
    spares rehashing unchanged files) with `git add -A` (untracked files too, ignored ones not),
    `write-tree` and `commit-tree`: the checkout, its index, stash list and branches stay as they
    were; only unreferenced objects are added. Dates are HEAD's, so the same working state always
    gives the same snapshot sha (and the caches keyed by commit keep working)."""
    head = git.head_commit(repo)
    if not head:
        raise GitError(f"{repo}: the repository has no commits yet")
    tree = _working_tree(repo)
    if tree == git.run_git(repo, "rev-parse", f"{head}^{{tree}}").strip():
        return WorkingState(head, head)
    date = git.run_git(repo, "show", "-s", "--format=%cI", head).strip()
    commit = _commit_tree(repo, tree, head, date)
    return WorkingState(commit, head)


def _working_tree(repo: Path) -> str:
    index = Path(git.run_git(repo, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    with tempfile.TemporaryDirectory(prefix="selfheal-index-") as tmp:
        temp_index = Path(tmp) / "index"
        if index.exists():
            shutil.copyfile(index, temp_index)
        env = {"GIT_INDEX_FILE": str(temp_index)}
        if not index.exists():
            git.run_git(repo, "read-tree", "HEAD", env=env, timeout=_TIMEOUT_S)
        ignore = Path(tmp) / "ignore"
        ignore.write_text(_global_excludes(repo) + "\n".join(_IGNORE) + "\n", encoding="utf-8")
        add = ("-c", f"core.excludesFile={ignore}", "add", "-A", "--", ".")
        git.run_git(repo, *add, env=env, timeout=_TIMEOUT_S)
        return git.run_git(repo, "write-tree", env=env, timeout=_TIMEOUT_S).strip()


def _global_excludes(repo: Path) -> str:
    """The user's own global ignore rules, which core.excludesFile above would replace."""
    configured = git.run_git(repo, "config", "--path", "core.excludesFile", check=False).strip()
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    path = Path(configured) if configured else Path(xdg) / "git" / "ignore"
    try:
        return path.read_text(encoding="utf-8", errors="replace") + "\n"
    except OSError:
        return ""


def _commit_tree(repo: Path, tree: str, parent: str, date: str) -> str:
    env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    args = ("commit-tree", tree, "-p", parent, "-m", SNAPSHOT_SUBJECT)
    return git.run_git(repo, *args, env=env, identity=True, timeout=_TIMEOUT_S).strip()


def snapshot_parent(repo: Path, commit: str) -> str:
    """The HEAD a selfheal snapshot was taken on, or '' when `commit` is an ordinary commit."""
    if not commit:
        return ""
    try:
        out = git.run_git(repo, "show", "-s", "--format=%P%n%s", commit)
    except GitError:
        return ""
    parents, _, subject = out.strip().partition("\n")
    if subject != SNAPSHOT_SUBJECT or len(parents.split()) != 1:
        return ""
    return parents.strip()
