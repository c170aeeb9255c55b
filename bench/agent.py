"""Agent benchmark: idle CPU over a minute, and the time from a file save to the tests starting.

Run: `python bench/agent.py` (options: --idle-seconds, --saves, --debounce-ms).

Baselines measured in the same run:
- idle CPU of a bare watchdog Observer process watching the same project (the least any
  file watcher costs);
- start-up time of a plain `python -m pytest` subprocess to its `pytest_configure` (what any
  re-run costs before a test can start), so save-to-start minus the debounce can be read as a
  ratio of the unavoidable part.
"""

from __future__ import annotations

import _path  # noqa: F401 - first: bench/ off sys.path (see bench/_path.py)

# isort: split

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

CONFTEST = """
import os, time
from pathlib import Path

def pytest_configure(config):
    # The moment tests can start: written where the watcher does not look (not a .py file).
    Path(os.environ.get("BENCH_MARK_FILE", ".bench-started")).write_text(str(time.time_ns()))
"""

FILES = {
    "pyproject.toml": '[project]\nname = "benchproj"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "conftest.py": CONFTEST,
    "benchproj/__init__.py": "",
    "benchproj/core.py": "def value():\n    return 1\n",
    "tests/test_core.py": "from benchproj.core import value\n\n\ndef test_value():\n"
    "    assert value() >= 1\n",
}

AGENT_RUN = (sys.executable, "-m", "agent.cli", "agent", "run", "--otlp-port", "0")

WATCHER = """
import sys, time
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
obs = Observer()
obs.schedule(FileSystemEventHandler(), sys.argv[1], recursive=True)
obs.start()
print("ready", flush=True)
time.sleep(3600)
"""


def make_project(root: Path) -> None:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.invalid",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.invalid",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)
    (root / ".gitignore").write_text(".bench-started\n.selfheal/\n")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and its live children (the agent's pytest runs are children)."""
    total = cpu_seconds(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += tree_cpu_seconds(int(child))
    return total


def wait_status(root: Path, timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    path = root / ".selfheal" / "agent.json"
    while time.monotonic() < deadline:
        if path.exists():
            try:
                data: dict[str, object] = json.loads(path.read_text())
                return data
            except ValueError:
                pass
        time.sleep(0.05)
    raise SystemExit("the agent did not start")


def agent_details(status: dict[str, object]) -> dict[str, object]:
    from agent.control import STATUS_PATH, call

    token = Path(str(status["token_file"])).read_text().strip()
    code, body = call(int(str(status["port"])), token, STATUS_PATH)
    assert code == 200 and isinstance(body, dict)
    return body


def wait_idle(status: dict[str, object], runs: int, timeout: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        details = agent_details(status)
        if int(str(details["test_runs"])) >= runs and not details["testing"]:
            return details
        time.sleep(0.1)
    raise SystemExit(f"the agent did not finish test run {runs}")


def plain_pytest_start(root: Path, repeats: int) -> list[float]:
    """Seconds from spawning plain pytest to its pytest_configure."""
    mark = root / ".bench-plain"
    out = []
    for _ in range(repeats):
        mark.unlink(missing_ok=True)
        t0 = time.time_ns()
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=root,
            env={**os.environ, "BENCH_MARK_FILE": str(mark)},
            capture_output=True,
            check=False,
        )
        out.append((int(mark.read_text()) - t0) / 1e9)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--saves", type=int, default=7)
    parser.add_argument("--debounce-ms", type=float, default=300.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-agent-") as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        make_project(root)
        return run(root, args)


def run(root: Path, args: argparse.Namespace) -> int:
    plain = plain_pytest_start(root, 5)
    agent = subprocess.Popen(
        [*AGENT_RUN, "--debounce-ms", str(args.debounce_ms)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watcher = subprocess.Popen(
        [sys.executable, "-c", WATCHER, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        status = wait_status(root)
        wait_idle(status, 1)  # the baseline run the agent makes on first start
        assert watcher.stdout is not None and watcher.stdout.readline().strip() == "ready"
        time.sleep(2.0)  # let start-up work settle
        print(f"measuring idle CPU for {args.idle_seconds:g}s ...", flush=True)
        agent_idle, watcher_idle = idle_percent_pair(agent.pid, watcher.pid, args.idle_seconds)
        to_spawn, to_start = measure_saves(root, status, args.saves)
    finally:
        watcher.kill()
        watcher.wait()
        agent.terminate()
        agent.wait(30)
    report((agent_idle, watcher_idle), to_spawn, to_start, plain, args)
    return 0


def idle_percent_pair(agent_pid: int, watcher_pid: int, seconds: float) -> tuple[float, float]:
    a0, w0 = tree_cpu_seconds(agent_pid), cpu_seconds(watcher_pid)
    time.sleep(seconds)
    a1, w1 = tree_cpu_seconds(agent_pid), cpu_seconds(watcher_pid)
    return 100.0 * (a1 - a0) / seconds, 100.0 * (w1 - w0) / seconds


def measure_saves(
    root: Path, status: dict[str, object], saves: int
) -> tuple[list[float], list[float]]:
    mark = root / ".bench-started"
    core = root / "benchproj" / "core.py"
    to_spawn: list[float] = []
    to_start: list[float] = []
    for i in range(saves):
        mark.unlink(missing_ok=True)
        runs = int(str(agent_details(status)["test_runs"]))
        saved = time.time_ns()
        core.write_text(f"def value():\n    return {i + 2}\n")
        details = wait_idle(status, runs + 1)
        last = details["last_run"]
        assert isinstance(last, dict)
        to_spawn.append((int(last["started_ns"]) - saved) / 1e9)
        to_start.append((int(mark.read_text()) - saved) / 1e9)
        time.sleep(0.5)
    return to_spawn, to_start


def report(
    idle: tuple[float, float],
    to_spawn: list[float],
    to_start: list[float],
    plain: list[float],
    args: argparse.Namespace,
) -> None:
    agent_idle, watcher_idle = idle
    debounce = args.debounce_ms / 1000.0
    spawn = statistics.median(to_spawn)
    start = statistics.median(to_start)
    plain_start = statistics.median(plain)
    after = start - debounce
    print()
    print(f"idle CPU over {args.idle_seconds:g}s (one core = 100%):")
    print(f"  agent (with its children)       {agent_idle:7.3f}%   target < 1%")
    print(f"  bare watchdog Observer          {watcher_idle:7.3f}%")
    if watcher_idle > 0:
        print(f"  ratio agent / bare observer     {agent_idle / watcher_idle:7.2f}x")
    print(f"save -> tests starting, median of {len(to_start)} saves (debounce {debounce:g}s):")
    print(
        f"  save -> pytest spawned          {spawn:7.3f}s  ({spawn - debounce:.3f}s after debounce)"
    )
    print(f"  save -> pytest_configure        {start:7.3f}s  ({after:.3f}s after debounce)")
    print("                                  target < 1s after the debounce")
    print(f"  plain pytest spawn -> configure {plain_start:7.3f}s  (baseline, median of 5)")
    print(f"  ratio (after debounce) / plain  {after / plain_start:7.2f}x")
    print("  per save (s): " + ", ".join(f"{t:.3f}" for t in to_start))


if __name__ == "__main__":
    sys.exit(main())
