"""A small git-tracked sample project for the plugin's pytester tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import commit_files, git  # the repository-root conftest

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
        return commit_files(self.path, files, message)

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
