"""The plugin-free early reject: used only when the failing tests behave the same without
plugins; rejects wrong candidates and lets right ones through."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.phases.diagnosis.codebase import CodebaseInfo
from agent.phases.diagnosis.pytest_exec import run_pytest
from agent.phases.fix.quickcheck import FastCheck
from agent.phases.validation.workspace import Worktree
from tests.agent.phases.fix_kit import git

pytestmark = pytest.mark.slow

TEST = "from m import f\n\n\ndef test_f():\n    assert f(2) == 4\n"
# `worker_id` comes from pytest-xdist, a dependency of ours, so it is installed wherever we are.
NEEDS_PLUGIN = "def test_bench(worker_id):\n    assert worker_id == 'gw9'\n"


def _diff(repo: Path, new: str) -> str:
    (repo / "m.py").write_text(new)
    diff = git(repo, "diff")
    git(repo, "checkout", "-q", "--", "m.py")
    return diff


def _info(repo: Path) -> CodebaseInfo:
    run = run_pytest(repo, ["tests"])
    return CodebaseInfo(str(repo), git(repo, "rev-parse", "HEAD").strip(), tests=run.tests)


def test_rejects_wrong_candidates_and_passes_right_ones(make_repo) -> None:
    repo = make_repo(
        {"m.py": "def f(x):\n    return x + x + 1\n", "tests/test_m.py": TEST, "conftest.py": ""}
    )
    with Worktree(repo, "HEAD", "fast") as wt:
        fast = FastCheck.calibrate(wt, ["tests/test_m.py::test_f"], _info(repo), 60)
        assert fast is not None
        assert not fast.passes(_diff(repo, "def f(x):\n    return x * x + 1\n"), 60)
        assert fast.passes(_diff(repo, "def f(x):\n    return x + x\n"), 60)
        assert not fast.passes("not a diff", 60)


def test_not_used_when_the_tests_need_an_installed_plugin(make_repo) -> None:
    repo = make_repo({"tests/test_b.py": NEEDS_PLUGIN, "conftest.py": ""})
    with Worktree(repo, "HEAD", "fast") as wt:
        assert FastCheck.calibrate(wt, ["tests/test_b.py::test_bench"], _info(repo), 60) is None
