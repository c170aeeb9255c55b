"""Hand-off of a test run's anomalies to a running agent, over its real control endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent import lifecycle as lc
from agent.config import load_config
from agent.control import STATUS_PATH, call
from agent.handoff import CHILD_ENV, hand_off


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def agent_root(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "pyproject.toml").write_text("[tool.selfheal]\n")
    started = _cli(tmp_path, "agent", "start", "--otlp-port", "-1", "--no-watch")
    assert started.returncode == 0, started.stderr
    yield tmp_path
    _cli(tmp_path, "agent", "stop")


def test_no_agent_means_heal_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHILD_ENV, raising=False)
    assert hand_off(load_config(tmp_path), ["an-1"]) is None
    assert hand_off(load_config(tmp_path), []) is None


def test_the_agent_takes_the_ids(agent_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHILD_ENV, raising=False)
    config = load_config(agent_root)
    handed = hand_off(config, ["an-1", "an-2"])
    assert handed is not None and handed.accepted == 2
    assert "2 anomalies handed to the agent" in handed.line()
    status = lc.read_status(lc.Paths(config.selfheal_dir))
    assert status is not None and handed.pid == status.pid
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        code, body = call(status.port, lc.read_token(status), STATUS_PATH)
        assert code == 200
        if body["heal"]["done"] == 2:
            break
        time.sleep(0.1)
    assert body["heal"]["queued"] == 2
    # Unknown ids are an honest outcome of the agent's healing, not a crash.
    assert "not in the store" in body["last_heal"]
    again = hand_off(config, ["an-1"])  # a duplicate counts as taken, not healed twice
    assert again is not None and again.accepted == 1


def test_hand_off_can_be_switched_off(agent_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHILD_ENV, raising=False)
    config = load_config(agent_root, {"agent_handoff": "off"})
    assert hand_off(config, ["an-1"]) is None


def test_runs_started_by_the_agent_leave_healing_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CHILD_ENV, "1")
    handed = hand_off(load_config(tmp_path), ["an-1"])
    assert handed is not None and "left to the agent" in handed.line()


def test_a_stale_status_file_means_heal_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CHILD_ENV, raising=False)
    paths = lc.Paths(tmp_path / ".selfheal")
    paths.directory.mkdir()
    paths.status.write_text(
        json.dumps(
            {
                "pid": 999_999_999,
                "port": 1,
                "started_ns": 0,
                "proc_start": "1",
                "token_file": str(paths.token),
                "log_file": str(paths.log),
                "root": str(tmp_path),
            }
        )
    )
    assert hand_off(load_config(tmp_path), ["an-1"]) is None


@pytest.mark.slow
def test_a_pytest_run_hands_its_anomaly_to_the_running_agent(
    make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CHILD_ENV, raising=False)
    repo = make_repo(
        {
            "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["."]\n',
            "calc.py": "def half(x):\n    return x / 2\n",
            "test_calc.py": "from calc import half\n\n\ndef test_half():\n"
            "    assert half(4) == 2\n",
        }
    )
    pytest_run = [sys.executable, "-m", "pytest", "--selfheal", "-p", "no:cacheprovider"]
    green = subprocess.run(pytest_run, cwd=repo, capture_output=True, text=True, check=False)
    assert green.returncode == 0, green.stdout
    started = _cli(repo, "agent", "start", "--otlp-port", "-1", "--no-watch")
    assert started.returncode == 0, started.stderr
    try:
        (repo / "calc.py").write_text("def half(x):\n    return x / 3\n")
        red = subprocess.run(pytest_run, cwd=repo, capture_output=True, text=True, check=False)
        assert red.returncode == 1
        assert "1 anomaly handed to the agent (pid" in red.stdout, red.stdout
        assert not (repo / ".selfheal" / "patches").exists()  # nothing healed inline
        status = lc.read_status(lc.Paths(repo / ".selfheal"))
        assert status is not None
        code, body = call(status.port, lc.read_token(status), STATUS_PATH)
        assert code == 200 and body["heal"]["queued"] == 1
    finally:
        _cli(repo, "agent", "stop", "--timeout", "5")
