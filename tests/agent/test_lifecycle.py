"""Status file, lock, process identity and safe stop, with real processes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import lifecycle as lc


@pytest.fixture
def paths(tmp_path: Path) -> lc.Paths:
    directory = tmp_path / ".selfheal"
    directory.mkdir()
    return lc.Paths(directory)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process that is not an agent (its command line says nothing of `agent run`)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def fake_agent() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line looks like `... agent run`, ignoring nothing."""
    code = "import sys, time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, "agent", "run"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _status(paths: lc.Paths, pid: int, proc_start: str | None = None) -> lc.AgentStatus:
    status = lc.AgentStatus(
        pid=pid,
        port=1,
        started_ns=time.time_ns(),
        proc_start=lc.process_start(pid) if proc_start is None else proc_start,
        token_file=str(paths.token),
        log_file=str(paths.log),
        root=str(paths.directory.parent),
    )
    lc.write_status(paths, status)
    return status


def test_process_start_is_stable_and_empty_for_missing_pids() -> None:
    me = lc.process_start(os.getpid())
    assert me and me == lc.process_start(os.getpid())
    assert lc.process_start(2**22 + 12345) == ""


def test_no_status_file_is_not_running(paths: lc.Paths) -> None:
    assert lc.check(paths) == (lc.NOT_RUNNING, None)


def test_live_agent_is_running(paths: lc.Paths, fake_agent: subprocess.Popen[bytes]) -> None:
    status = _status(paths, fake_agent.pid)
    assert lc.check(paths) == (lc.RUNNING, status)


def test_dead_agent_leaves_a_stale_status(
    paths: lc.Paths, fake_agent: subprocess.Popen[bytes]
) -> None:
    _status(paths, fake_agent.pid)
    fake_agent.kill()
    fake_agent.wait()
    assert lc.check(paths)[0] == lc.DEAD_STALE


def test_reused_pid_is_not_ours(paths: lc.Paths, fake_agent: subprocess.Popen[bytes]) -> None:
    # Same pid, but another start time: the pid was recycled for some other process.
    _status(paths, fake_agent.pid, proc_start="1")
    assert lc.check(paths)[0] == lc.DEAD_STALE
    message, _ = lc.stop(paths, timeout_s=1)
    assert "not running" in message
    assert fake_agent.poll() is None  # never signalled
    assert not paths.status.exists()


def test_stop_never_signals_a_process_that_is_not_an_agent(
    paths: lc.Paths, sleeper: subprocess.Popen[bytes]
) -> None:
    _status(paths, sleeper.pid)  # right pid and start time, but not an agent's command line
    message, code = lc.stop(paths, timeout_s=1)
    assert code == 0 and "stale" in message
    time.sleep(0.1)
    assert sleeper.poll() is None


def test_stop_terminates_gracefully(paths: lc.Paths, fake_agent: subprocess.Popen[bytes]) -> None:
    _status(paths, fake_agent.pid)
    message, code = lc.stop(paths, timeout_s=5)
    assert code == 0 and message.startswith("stopped")
    assert fake_agent.wait(5) == -signal.SIGTERM


def test_stop_kills_an_agent_that_ignores_sigterm(paths: lc.Paths) -> None:
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, "agent", "run"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        _status(paths, proc.pid)
        started = time.monotonic()
        message, _ = lc.stop(paths, timeout_s=0.5)
        assert "killed" in message
        assert proc.wait(5) == -signal.SIGKILL
        assert time.monotonic() - started < 5
        assert not paths.status.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_lock_refuses_a_second_holder_with_a_clear_message(
    paths: lc.Paths, fake_agent: subprocess.Popen[bytes]
) -> None:
    _status(paths, fake_agent.pid)
    with lc.hold_lock(paths):
        assert lc.lock_is_held(paths)
        with pytest.raises(lc.AgentError, match=r"already running .*pid \d+"), lc.hold_lock(paths):
            pass
    assert not lc.lock_is_held(paths)


def test_lock_dies_with_a_killed_holder(paths: lc.Paths) -> None:
    code = (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
        "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(paths.lock)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"locked\n"
        assert lc.lock_is_held(paths)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not lc.lock_is_held(paths)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_status_file_problems_are_one_line_errors(paths: lc.Paths) -> None:
    paths.status.write_text("{not json")
    with pytest.raises(lc.AgentError, match=r"agent\.json: not valid JSON"):
        lc.check(paths)
    paths.status.write_text(json.dumps({"pid": 1}))
    with pytest.raises(lc.AgentError, match="not an agent status file"):
        lc.check(paths)


def test_token_is_private(paths: lc.Paths) -> None:
    token = lc.new_token(paths)
    assert len(token) >= 32
    assert paths.token.stat().st_mode & 0o777 == 0o600
    status = _status(paths, os.getpid())
    assert lc.read_token(status) == token


def test_log_rotates(paths: lc.Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lc, "LOG_BYTES", 2_000)
    logger = lc.setup_logging(paths, to_stderr=False)
    try:
        for i in range(200):
            logging.getLogger("selfheal.test").info("line %d %s", i, "x" * 40)
    finally:
        lc.teardown_logging(logger)
    rotated = sorted(p.name for p in paths.directory.glob("agent.log*"))
    assert rotated == ["agent.log", "agent.log.1", "agent.log.2", "agent.log.3"]
    assert paths.log.stat().st_size <= 2_000


def test_spawn_detached_reports_an_early_exit(paths: lc.Paths) -> None:
    argv = [sys.executable, "-c", "import sys; print('selfheal: error: bad port'); sys.exit(2)"]
    with pytest.raises(lc.AgentError, match=r"exited at start .*bad port"):
        lc.spawn_detached(paths, argv, timeout_s=10)
