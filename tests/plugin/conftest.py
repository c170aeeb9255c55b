"""A small git-tracked sample project for the plugin's pytester tests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
}

APP = """\
import time


def slow(seconds=0.01):
    time.sleep(seconds)
    return 1


def ratio(a, b):
    return a / b
"""

# pytester's own files (subprocess output, basetemp) must not make the tree dirty.
IGNORE = "__pycache__/\n*.json\n*.md\nstdout\nstderr\nrunpytest-*\ncount.txt\n"

TESTS = """\
import app


def test_slow():
    assert app.slow() == 1


def test_ratio():
    assert app.ratio(4, 2) == 2


def test_fast():
    assert True
"""


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class Project:
    """The pytester directory as a git repository with a tiny app and its tests."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        git(self.path, "init", "-q", "-b", "main")
        (self.path / ".gitignore").write_text(IGNORE, encoding="utf-8")
        pytester.makeini("[pytest]\n")
        self.commit({"app.py": APP, "test_app.py": TESTS}, "initial")

    def commit(self, files: dict[str, str], message: str) -> str:
        for rel, text in files.items():
            (self.path / rel).write_text(text, encoding="utf-8")
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD").strip()

    def edit(self, rel: str, old: str, new: str, message: str) -> str:
        text = (self.path / rel).read_text(encoding="utf-8")
        assert old in text
        return self.commit({rel: text.replace(old, new)}, message)

    def report(self, name: str = "r.json") -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.path / name).read_text(encoding="utf-8"))
        return data


@pytest.fixture
def project(pytester: pytest.Pytester) -> Project:
    return Project(pytester)
