"""Run pytest in a fresh subprocess with the probe plugin and read its results from a file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.phases.diagnosis.probe import COVERAGE_ENV, OUT_ENV

# pytest exit codes: 0 all passed, 1 some failed, 2 interrupted, 3 internal error,
# 4 usage error, 5 no tests collected.
COLLECTION_PROBLEMS = (2, 3, 4, 5)
_SCRUB = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "COVERAGE_PROCESS_START", "PYTEST_XDIST_WORKER")


@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    function: str
    args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TestResult:
    nodeid: str
    outcome: str  # passed | failed | error | skipped
    duration_ns: int = 0
    longrepr: str = ""
    exception: str = ""
    frames: tuple[Frame, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome in ("passed", "skipped")


@dataclass(frozen=True)
class PytestRun:
    returncode: int
    timed_out: bool
    elapsed_s: float
    tests: dict[str, TestResult]
    coverage: dict[str, frozenset[tuple[str, int]]]
    output: str = ""

    @property
    def collected(self) -> bool:
        """True when pytest ran tests at all (no collection error, no timeout)."""
        return (
            not self.timed_out and self.returncode not in COLLECTION_PROBLEMS and bool(self.tests)
        )

    def passed(self, nodeids: Sequence[str]) -> bool:
        """Every named test ran and passed; a missing test is never a pass."""
        return self.collected and all(n in self.tests and self.tests[n].ok for n in nodeids)


def run_pytest(
    cwd: Path,
    args: Sequence[str],
    *,
    timeout_s: float = 120.0,
    coverage: bool = False,
    env: Mapping[str, str] | None = None,
    python: Sequence[str] = (),
    autoload: bool = True,
) -> PytestRun:
    """`python -m pytest args` in cwd; the process group is killed at the timeout.

    With `autoload=False` installed pytest plugins are not loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD),
    which saves most of pytest's start-up; callers use it only after checking that the tests
    behave the same without them.
    """
    with tempfile.TemporaryDirectory(prefix="selfheal-probe-") as tmp:
        out = Path(tmp) / "probe.json"
        full_env = _environment(cwd, out, coverage, env)
        if not autoload:
            full_env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        cmd = [
            sys.executable,
            *python,
            "-m",
            "pytest",
            "-p",
            "agent.phases.diagnosis.probe",
            "-p",
            "no:selfheal",
            "-p",
            "no:cacheprovider",
            *(["-n0"] if autoload else []),  # xdist is one of the autoloaded plugins
            "-q",
            "--tb=native",
            *args,
        ]
        started = time.monotonic()
        code, text, timed_out = _run(cmd, cwd, full_env, timeout_s)
        elapsed = time.monotonic() - started
        body = _read(out)
    return PytestRun(code, timed_out, elapsed, _tests(body), _coverage(body), text[-20000:])


def _environment(
    cwd: Path, out: Path, coverage: bool, extra: Mapping[str, str] | None
) -> dict[str, str]:
    # SELFHEAL_* would turn healing on inside our own test runs.
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith("SELFHEAL_")}
    # The checked-out code must shadow an editable install of the same project.
    roots = [str(cwd / "src")] if (cwd / "src").is_dir() else []
    env["PYTHONPATH"] = os.pathsep.join([*roots, str(cwd)])
    # No bytecode files: our worktrees must stay byte-identical to the commit plus the patch.
    env.update({"PYTHONDONTWRITEBYTECODE": "1", OUT_ENV: str(out), "PYTHONHASHSEED": "0"})
    env[COVERAGE_ENV] = "1" if coverage else "0"
    env.update(extra or {})
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout_s: float) -> tuple[int, str, bool]:
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so grandchildren die with it
    )
    try:
        text, _ = proc.communicate(timeout=max(timeout_s, 0.1))
        return proc.returncode, text, False
    except subprocess.TimeoutExpired:
        with_suppressed_kill(proc.pid)
        text, _ = proc.communicate()
        return -signal.SIGKILL, text, True


def with_suppressed_kill(pid: int) -> None:
    """Kill a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _tests(body: dict[str, Any]) -> dict[str, TestResult]:
    result = {}
    for nodeid, raw in body.get("tests", {}).items():
        frames = tuple(
            Frame(f["file"], int(f["line"]), f["function"], dict(f.get("args", {})))
            for f in raw.get("frames", [])
        )
        result[nodeid] = TestResult(
            nodeid,
            str(raw.get("outcome", "error")),
            int(raw.get("duration_ns", 0)),
            str(raw.get("longrepr", "")),
            str(raw.get("exception", "")),
            frames,
        )
    return result


def _coverage(body: dict[str, Any]) -> dict[str, frozenset[tuple[str, int]]]:
    return {
        test: frozenset((str(f), int(n)) for f, n in lines)
        for test, lines in body.get("coverage", {}).items()
    }
