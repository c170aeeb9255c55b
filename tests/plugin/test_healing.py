"""As a new user: the last commit broke a test; `pytest --selfheal` ends with a validated patch."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import commit_files, git

pytestmark = pytest.mark.slow

INVENTORY = """def restock(levels, item, amount):
    levels = dict(levels)
    levels[item] = levels.get(item, 0) + amount
    return levels


def low_stock(levels, threshold):
    return sorted(name for name, n in levels.items() if n < threshold)
"""
TESTS = """from inventory import low_stock, restock


def test_restock():
    assert restock({"a": 1}, "a", 2) == {"a": 3}


def test_low_stock():
    assert low_stock({"a": 1, "b": 5}, 3) == ["a"]


def test_low_stock_boundary():
    assert low_stock({"a": 3}, 3) == []
"""


def _pytest(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SELFHEAL_", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


def _snapshot(repo: Path) -> dict[str, str]:
    """Hash of every file outside .git and .selfheal: the developer's working tree."""
    return {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and not {".git", ".selfheal"} & set(p.relative_to(repo).parts)
    }


def test_broken_commit_is_healed_and_the_patch_makes_pytest_green(make_repo) -> None:
    repo = make_repo(
        {"inventory.py": INVENTORY, "tests/test_inventory.py": TESTS, "conftest.py": ""}
    )
    for _ in range(2):
        assert _pytest(repo, "--selfheal", "--selfheal-budget=0").returncode == 0
    commit_files(
        repo,
        {"inventory.py": INVENTORY.replace("n < threshold", "n <= threshold")},
        "low_stock: include items at the threshold",
    )
    before = _snapshot(repo)
    proc = _pytest(repo, "--selfheal")
    out = proc.stdout
    assert proc.returncode == 1, out  # the plugin never changes the run's own verdict
    assert "diagnosis:" in out and "running the gate" in out  # progress is visible
    found = re.search(
        r"^healed .*: (\w+) patch .* -> (\.selfheal/patches/patch-\w+\.diff)$", out, re.MULTILINE
    )
    assert found, out
    assert _snapshot(repo) == before
    assert git(repo, "status", "--porcelain") == ""
    git(repo, "apply", found.group(2))
    assert _pytest(repo, "-p", "no:selfheal", "-q").returncode == 0


def test_budget_zero_disables_healing(make_repo) -> None:
    repo = make_repo(
        {"inventory.py": INVENTORY, "tests/test_inventory.py": TESTS, "conftest.py": ""}
    )
    _pytest(repo, "--selfheal", "--selfheal-budget=0")
    commit_files(
        repo, {"inventory.py": INVENTORY.replace("n < threshold", "n <= threshold")}, "break"
    )
    out = _pytest(repo, "--selfheal", "--selfheal-budget=0").stdout
    assert "error/new_failure" in out
    assert "diagnosis:" not in out and "healed" not in out


def test_an_uncommitted_breaking_edit_is_healed_without_touching_the_checkout(make_repo) -> None:
    repo = make_repo(
        {"inventory.py": INVENTORY, "tests/test_inventory.py": TESTS, "conftest.py": ""}
    )
    for _ in range(2):
        assert _pytest(repo, "--selfheal", "--selfheal-budget=0").returncode == 0
    # The developer's edit is not committed; an untracked helper and a staged change too.
    broken = INVENTORY.replace("n < threshold", "n <= threshold")
    (repo / "inventory.py").write_text(broken, encoding="utf-8")
    (repo / "notes.txt").write_text("scratch\n", encoding="utf-8")
    (repo / "conftest.py").write_text("# staged\n", encoding="utf-8")
    git(repo, "add", "conftest.py")
    head = git(repo, "rev-parse", "HEAD")
    state = (
        git(repo, "status", "--porcelain"),
        git(repo, "diff", "--cached"),
        git(repo, "stash", "list"),
        _own_refs(repo),
    )
    before = _snapshot(repo)
    proc = _pytest(repo, "--selfheal")
    out = proc.stdout
    assert "uncommitted changes, snapshot" in out, out
    found = re.search(
        r"^healed .*: (\w+) patch .* -> (\.selfheal/patches/patch-\w+\.diff)$", out, re.MULTILINE
    )
    assert found, out
    # Tree, index, stash list and refs are exactly as the developer left them.
    assert _snapshot(repo) == before
    assert git(repo, "rev-parse", "HEAD") == head
    after = (
        git(repo, "status", "--porcelain"),
        git(repo, "diff", "--cached"),
        git(repo, "stash", "list"),
        _own_refs(repo),
    )
    assert after == state
    # The proposal says its base was uncommitted work; the branch starts from the snapshot.
    assert "based on uncommitted work" in out, out
    branch = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/selfheal/").split()
    assert branch, out
    log = git(repo, "log", "--format=%s", branch[0])
    assert "selfheal: snapshot of uncommitted work" in log
    # The patch is relative to the working tree: it applies there and makes pytest green.
    git(repo, "apply", found.group(2))
    assert "n < threshold" in (repo / "inventory.py").read_text(encoding="utf-8")
    assert _pytest(repo, "-p", "no:selfheal", "-q").returncode == 0


def _own_refs(repo: Path) -> list[str]:
    """Every ref but the proposal branches selfheal adds."""
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    return [r for r in refs if not r.startswith("refs/heads/selfheal/")]
