"""The pre-started pytest process: real subprocesses, fresh code guaranteed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.warm import WarmPytest

PROJECT = {
    "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "test_value.py": "import heavy\n\n\ndef test_value():\n    assert heavy.VALUE == 2\n",
}


def _run(warm: WarmPytest, repo: Path) -> tuple[int, str]:
    proc = warm.run(["-q", "-p", "no:cacheprovider", "test_value.py"], repo / "out.txt")
    assert proc is not None
    code = proc.wait(60)
    return code, (repo / "out.txt").read_text()


@pytest.mark.slow
def test_a_changed_preimported_module_is_read_fresh(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo(PROJECT)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "heavy.py").write_text("VALUE = 1\n")
    env = {**os.environ, "PYTHONPATH": str(lib), "SELFHEAL_WARM_IMPORTS": "heavy"}
    warm = WarmPytest(repo, env)
    time.sleep(3)  # it has imported pytest, its plugins and `heavy` by now
    (lib / "heavy.py").write_text("VALUE = 2\n")
    code, output = _run(warm, repo)
    assert code == 0, output  # the stale pre-import was dropped for a cold start
    assert "1 passed" in output


def test_an_unchanged_warm_process_runs_the_tests(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({**PROJECT, "heavy.py": "VALUE = 2\n"})
    warm = WarmPytest(repo, dict(os.environ))
    code, output = _run(warm, repo)
    assert code == 0 and "1 passed" in output
    assert warm.run(["-q"], repo / "again.txt") is None  # one request per process


def test_discard_ends_an_unused_process(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(PROJECT)
    warm = WarmPytest(repo, dict(os.environ))
    warm.discard()
    assert not warm.alive()
