"""Affected-test selection and the one-at-a-time pytest runner, with real subprocesses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import coverage_map
from agent.autorun import FULL_RUN, AutoRunner, TestRun, is_test_file, select_affected
from agent.store import Store

PROJECT = {
    "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "lib/__init__.py": "",
    "lib/a.py": "def one():\n    return 1\n",
    "lib/b.py": "def two():\n    return 2\n",
    "tests/test_a.py": "from lib.a import one\n\n\ndef test_one():\n    assert one() == 1\n",
    "tests/test_b.py": "import time\n\nfrom lib.b import two\n\n\ndef test_two():\n"
    "    time.sleep(float(__import__('os').environ.get('SLOW', '0')))\n    assert two() == 2\n",
}


def _store_with_map(path: Path) -> Path:
    with Store.open(path) as store:
        coverage_map.save(
            store,
            {
                "tests/test_a.py::test_one": {"lib/a.py": [2], "tests/test_a.py": [5]},
                "tests/test_b.py::test_two": {"lib/b.py": [2], "tests/test_b.py": [7, 8]},
            },
            {"lib/a.py": [1, 2], "lib/b.py": [1, 2]},
            commit="abc",
            dirty=False,
        )
    return path


def test_selection_from_the_coverage_map(tmp_path: Path) -> None:
    db = _store_with_map(tmp_path / "db")
    assert select_affected(db, frozenset({"lib/a.py"})) == ["tests/test_a.py::test_one"]
    assert select_affected(db, frozenset({"lib/a.py", "lib/b.py"})) == [
        "tests/test_a.py::test_one",
        "tests/test_b.py::test_two",
    ]
    # A changed test file runs itself (and its node ids are not repeated).
    assert select_affected(db, frozenset({"tests/test_b.py", "lib/b.py"})) == ["tests/test_b.py"]


def test_selection_runs_everything_when_the_map_cannot_answer(tmp_path: Path) -> None:
    db = _store_with_map(tmp_path / "db")
    assert select_affected(db, frozenset({"lib/new_module.py"})) is None
    assert select_affected(db, frozenset({"tests/conftest.py"})) is None
    assert select_affected(db, frozenset({FULL_RUN})) is None
    assert select_affected(tmp_path / "missing.db", frozenset({"lib/a.py"})) is None
    with Store.open(tmp_path / "empty.db"):
        pass
    assert select_affected(tmp_path / "empty.db", frozenset({"lib/a.py"})) is None


def test_is_test_file() -> None:
    assert is_test_file("tests/test_x.py") and is_test_file("x_test.py")
    assert not is_test_file("lib/testing.py") and not is_test_file("tests/data.txt")


class Results:
    def __init__(self) -> None:
        self.runs: list[TestRun] = []
        self.event = threading.Event()

    def __call__(self, run: TestRun) -> None:
        self.runs.append(run)
        self.event.set()

    def wait(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.runs) < count and time.monotonic() < deadline:
            self.event.wait(0.1)
            self.event.clear()
        assert len(self.runs) >= count, self.runs


@pytest.mark.slow
def test_runs_selected_tests_in_a_subprocess(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(PROJECT)
    db = _store_with_map(repo / ".selfheal" / "selfheal.db")
    results = Results()
    runner = AutoRunner(repo, db, results)
    runner.start()
    try:
        runner.submit(frozenset({"lib/a.py"}))
        results.wait(1)
    finally:
        runner.stop()
    run = results.runs[0]
    assert run.exit_code == 0 and run.selected == ("tests/test_a.py::test_one",)
    assert run.warm  # the pre-started pytest took it
    assert any("1 passed" in line for line in run.output_tail)
    assert run.spawn_latency_s < 5


@pytest.mark.slow
def test_changes_during_a_run_merge_into_one_next_run(
    make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(PROJECT)
    db = repo / ".selfheal" / "selfheal.db"
    results = Results()
    runner = AutoRunner(repo, db, results, select=lambda _db, _changed: ["tests/test_b.py"])
    monkeypatch.setenv("SLOW", "1.5")
    try:
        runner.start()
        runner.submit(frozenset({"lib/b.py"}))
        time.sleep(0.5)  # the first run is under way (it sleeps 1.5 s)
        assert runner.busy and runner.last is None
        for name in ("x.py", "y.py", "z.py"):
            runner.submit(frozenset({f"lib/{name}"}))
            time.sleep(0.05)
        results.wait(2)
        time.sleep(0.5)
    finally:
        runner.stop()
    assert len(results.runs) == 2
    assert results.runs[1].changed == frozenset({"lib/x.py", "lib/y.py", "lib/z.py"})


@pytest.mark.slow
def test_a_run_over_its_timeout_is_killed(
    make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(PROJECT)
    results = Results()
    # Before the runner exists: it takes its children's environment when it is made.
    monkeypatch.setenv("SLOW", "30")
    runner = AutoRunner(
        repo,
        repo / ".selfheal" / "selfheal.db",
        results,
        select=lambda _db, _changed: ["tests/test_b.py"],
        timeout_s=1.0,
    )
    try:
        runner.start()
        started = time.monotonic()
        runner.submit(frozenset({"lib/b.py"}))
        results.wait(1, timeout=30)
    finally:
        runner.stop()
    assert results.runs[0].timed_out
    assert time.monotonic() - started < 15
