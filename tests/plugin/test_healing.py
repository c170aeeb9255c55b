"""As a new user: the last commit broke a test; `pytest --selfheal` ends with a validated patch."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    proc = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def commit_files(repo: Path, files: dict[str, str], message: str) -> None:
    for rel, text in files.items():
        (repo / rel).write_text(text, encoding="utf-8")
    git(repo, "commit", "-qam", message)


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
