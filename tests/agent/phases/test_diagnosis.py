"""diagnosis.analyze end to end on real repositories: coverage, Ochiai, bisect, profile."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.conductor import Conductor
from agent.config import load_config
from agent.phases.diagnosis import diagnose_baton
from agent.records import Anomaly, AnomalyKind, Diagnosis, Severity
from tests.agent.phases.fix_kit import commit_files, git

pytestmark = pytest.mark.slow

GOOD = """def total(prices, discount):
    s = 0
    for p in prices:
        s += p
    if discount:
        s = s - s * discount / 100
    return s


def count(prices):
    return len(prices)
"""
TESTS = """from shop import count, total


def test_total():
    assert total([10, 20], 0) == 30


def test_discount():
    assert total([100], 10) == 90


def test_count():
    assert count([1, 2]) == 2
"""


def _anomaly(repo: Path, tests: tuple[str, ...], base: str, kind: AnomalyKind) -> Anomaly:
    head = git(repo, "rev-parse", "HEAD").strip()
    return Anomaly(
        "an-1",
        kind,
        "new_failure",
        Severity.HIGH,
        0.9,
        tests[0],
        "broke",
        time.time_ns(),
        commit=head,
        baseline_commit=base,
        tests=tests,
    )


def test_culprit_commit_ranked_line_frame_and_ladder(make_repo) -> None:
    repo = make_repo({"shop.py": GOOD, "tests/test_shop.py": TESTS, "conftest.py": ""})
    base = git(repo, "rev-parse", "HEAD").strip()
    commit_files(repo, {"README.md": "# shop\n"}, "docs")
    culprit = commit_files(repo, {"shop.py": GOOD.replace("s += p", "s += p + 1")}, "regress")
    commit_files(repo, {"NOTES.md": "notes\n"}, "notes")
    tests = ("tests/test_shop.py::test_total", "tests/test_shop.py::test_discount")
    config = load_config(repo)
    with Conductor(config) as conductor:
        baton = diagnose_baton(conductor, _anomaly(repo, tests, base, AnomalyKind.ERROR))
        stored = conductor.store().get(baton.diagnosis.id, Diagnosis) if baton.diagnosis else None
    assert stored is not None and stored == baton.diagnosis
    assert stored.culprit_commit == culprit
    assert baton.codebase is not None and baton.codebase.bisect is not None
    assert len(baton.codebase.bisect.tested) <= 2
    assert (baton.ranked[0].file, baton.ranked[0].line, baton.ranked[0].rank) == ("shop.py", 4, 1)
    assert stored.suggested_fixes[0].strategy == "partial_revert"
    assert stored.impact.tests == 2
    assert git(repo, "status", "--porcelain") == ""  # the developer's tree is untouched
    assert "worktree" not in git(repo, "worktree", "list").split("\n", 1)[-1]


def test_the_culprit_range_ends_with_the_uncommitted_working_state(make_repo) -> None:
    repo = make_repo({"shop.py": GOOD, "tests/test_shop.py": TESTS, "conftest.py": ""})
    base = git(repo, "rev-parse", "HEAD").strip()
    commit_files(repo, {"README.md": "# shop\n"}, "docs")
    commit_files(repo, {"NOTES.md": "notes\n"}, "notes")
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo / "shop.py").write_text(GOOD.replace("s += p", "s += p + 1"), encoding="utf-8")
    tests = ("tests/test_shop.py::test_total", "tests/test_shop.py::test_discount")
    with Conductor(load_config(repo)) as conductor:
        baton = diagnose_baton(conductor, _anomaly(repo, tests, base, AnomalyKind.ERROR))
    info, diagnosis = baton.codebase, baton.diagnosis
    assert info is not None and diagnosis is not None
    # The working state is a snapshot commit on HEAD, the last step of the bisected range.
    assert git(repo, "rev-parse", f"{info.head}^").strip() == head
    assert info.commits[-1] == info.head and len(info.commits) == 3
    assert diagnosis.culprit_commit == info.head
    assert (baton.ranked[0].file, baton.ranked[0].line) == ("shop.py", 4)
    assert git(repo, "status", "--porcelain") == " M shop.py\n"  # still the developer's edit


def test_differential_profile_names_the_function_that_got_slower(make_repo) -> None:
    cached = (
        "import functools\n\n\n@functools.cache\ndef paths(r, c):\n"
        "    return 1 if r == 0 or c == 0 else paths(r - 1, c) + paths(r, c - 1)\n"
    )
    test = "from grid import paths\n\n\ndef test_big():\n    assert paths(10, 10) == 184756\n"
    repo = make_repo({"grid.py": cached, "tests/test_grid.py": test, "conftest.py": ""})
    base = git(repo, "rev-parse", "HEAD").strip()
    commit_files(repo, {"grid.py": cached.replace("@functools.cache\n", "")}, "drop cache")
    anomaly = _anomaly(repo, ("tests/test_grid.py::test_big",), base, AnomalyKind.PERFORMANCE)
    with Conductor(load_config(repo)) as conductor:
        baton = diagnose_baton(conductor, anomaly)
    assert baton.diagnosis is not None
    grown = [c for c in baton.diagnosis.root_causes if c.evidence.get("kind") == "profile"]
    assert grown and grown[0].location.function == "paths"
    assert int(grown[0].evidence["current_calls"]) > 10 * int(grown[0].evidence["base_calls"])
    assert baton.diagnosis.suggested_fixes[0].strategy == "partial_revert"
