"""Sandboxed pytest runs: real subprocesses killed at the timeout, capped, cut off, scrubbed."""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.runner import Sandbox, network_prefix, run_pytest, scrubbed_env


def _project(tmp_path: Path, tests: str, conftest: str = "") -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "test_it.py").write_text(tests, encoding="utf-8")
    if conftest:
        (root / "conftest.py").write_text(conftest, encoding="utf-8")
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_results_come_from_the_result_file(tmp_path: Path) -> None:
    root = _project(tmp_path, "def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n")
    outcome = run_pytest(root, [], patch_id="p1")
    assert outcome.status == "finished" and outcome.result is not None
    assert {t.nodeid: t.outcome for t in outcome.result.tests} == {
        "test_it.py::test_ok": "passed",
        "test_it.py::test_bad": "failed",
    }
    assert outcome.result.collected == 2 and outcome.result.exitstatus == 1
    assert outcome.problem == ""


def test_timeout_kills_the_process_group_grandchildren_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    tests = (
        "import subprocess, time\n\n"
        "def test_hangs():\n"
        "    child = subprocess.Popen(['sleep', '300'])\n"
        f"    open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "    time.sleep(300)\n"
    )
    root = _project(tmp_path, tests)
    started = time.monotonic()
    outcome = run_pytest(root, [], patch_id="p1", sandbox=Sandbox(timeout_s=4))
    assert time.monotonic() - started < 20
    assert outcome.status == "timeout" and outcome.result is None
    assert "timed out" in outcome.problem
    deadline = time.monotonic() + 5
    pid = int(pidfile.read_text())
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def test_memory_is_capped(tmp_path: Path) -> None:
    tests = "def test_big():\n    block = bytearray(1_500_000_000)\n    assert block\n"
    root = _project(tmp_path, tests)
    outcome = run_pytest(root, [], patch_id="p1", sandbox=Sandbox(memory_bytes=1 << 30))
    assert outcome.result is not None
    (test,) = outcome.result.tests
    assert test.outcome == "failed" and "MemoryError" in test.message


@pytest.fixture
def local_server() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.slow
def test_network_is_cut_where_the_machine_allows(tmp_path: Path, local_server: int) -> None:
    tests = (
        "import socket\n\n"
        "def test_reach():\n"
        f"    socket.create_connection(('127.0.0.1', {local_server}), timeout=2).close()\n"
    )
    root = _project(tmp_path, tests)
    cut = run_pytest(root, [], patch_id="p1")
    allowed = run_pytest(root, [], patch_id="p1", sandbox=Sandbox(network=True))
    assert allowed.result is not None and allowed.result.tests[0].outcome == "passed"
    assert cut.result is not None
    prefix, note = network_prefix()
    if prefix:
        assert cut.result.tests[0].outcome == "failed" and cut.notes == ()
    else:
        assert note in cut.notes  # recorded, never silently pretended


def test_a_crash_without_result_file_is_never_a_pass(tmp_path: Path) -> None:
    root = _project(tmp_path, "def test_ok():\n    pass\n", conftest="import os\nos._exit(0)\n")
    outcome = run_pytest(root, [], patch_id="p1")
    assert outcome.status == "crashed" and outcome.result is None
    assert "crashed" in outcome.problem


def test_no_tests_is_a_problem(tmp_path: Path) -> None:
    root = _project(tmp_path, "x = 1\n")
    outcome = run_pytest(root, [], patch_id="p1")
    assert outcome.problem == "no tests ran"


def test_environment_is_scrubbed(tmp_path: Path) -> None:
    base = {
        "PATH": "/usr/bin",
        "GITHUB_TOKEN": "t",
        "AWS_ACCESS_KEY_ID": "a",
        "MY_API_KEY": "k",
        "DB_PASSWORD": "p",
        "PYTEST_ADDOPTS": "-x",
        "PYTHONPATH": "/developer/tree",
        "HOME": "/root",
        "LANG": "C.UTF-8",
    }
    env = scrubbed_env(base, tmp_path / "home", tmp_path / "wt")
    secrets = ("GITHUB_TOKEN", "AWS_ACCESS_KEY_ID", "MY_API_KEY", "DB_PASSWORD", "PYTEST_ADDOPTS")
    assert not set(secrets) & set(env)
    assert env["HOME"] == str(tmp_path / "home") and env["LANG"] == "C.UTF-8"
    assert env["PYTHONPATH"] == str(tmp_path / "wt") and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["XDG_CACHE_HOME"].startswith(str(tmp_path / "home"))


def test_a_projects_own_pytest_cov_does_not_blind_our_coverage(tmp_path: Path) -> None:
    pytest.importorskip("pytest_cov")
    root = _project(tmp_path, "import lib\n\ndef test_f():\n    assert lib.f() == 1\n")
    (root / "lib.py").write_text("def f():\n    return 1\n", encoding="utf-8")
    (root / "pytest.ini").write_text("[pytest]\naddopts = --cov=. --cov-report=\n", "utf-8")
    outcome = run_pytest(root, [], patch_id="p1", coverage=True)
    assert outcome.result is not None and outcome.result.coverage is not None
    lib = outcome.result.coverage["lib.py"]
    assert lib.missing == frozenset() and lib.in_tests == frozenset({2})
