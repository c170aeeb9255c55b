"""Sandboxed pytest runs: own process group, timeout, memory cap, no network, scrubbed env."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

# Variables that carry credentials, by name; cloud SDK settings go too (they point at keys).
_SECRET = re.compile(
    r"TOKEN|SECRET|KEY|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|"
    r"^AWS_|^AZURE_|^GOOGLE_|^GCP_|^GCLOUD_|^CLOUDSDK_|^DIGITALOCEAN|^HEROKU_|^NETRC|^SSH_|"
    r"^GH_|^GITHUB_|^GITLAB_|^NPM_|^PYPI_|^TWINE_|^DOCKER_|^KUBECONFIG|^VAULT_",
    re.IGNORECASE,
)
# Settings that would change what pytest runs or where it imports from.
_DROP = re.compile(
    r"^PYTEST_ADDOPTS$|^PYTEST_PLUGINS$|^PYTEST_XDIST|^PYTHONPATH$|^PYTHONHOME$|^PYTHONSTARTUP$|"
    r"^PYTHONINSPECT$|^PYTHONBREAKPOINT$|^COV_CORE_|^COVERAGE_|^SELFHEAL_|^VIRTUAL_ENV_PROMPT$|"
    r"^XDG_|^HOME$|^TMPDIR$|^TEMP$|^TMP$|^http_proxy$|^https_proxy$|^HTTP_PROXY$|^HTTPS_PROXY$|"
    r"^ALL_PROXY$|^all_proxy$"
)
RESULT_PLUGIN = "pytest_selfheal.validation"
DEFAULT_MEMORY_BYTES = 4 << 30


@dataclass(frozen=True)
class TestOutcome:
    """One test's result in one attempt, as the plugin wrote it."""

    __test__: ClassVar[bool] = False  # not a test class, whatever pytest thinks of the name

    nodeid: str
    outcome: str  # passed | failed | skipped | error | xfailed | xpassed
    duration_ns: int
    attempt: int = 1
    message: str = ""


@dataclass(frozen=True)
class FileCoverage:
    statements: frozenset[int]
    missing: frozenset[int]
    in_tests: frozenset[int] | None = None  # lines run inside a test (not at import time)

    @property
    def covered(self) -> frozenset[int]:
        return self.statements - self.missing


@dataclass(frozen=True)
class PytestResult:
    """What the plugin in validation mode wrote: the machine-readable account of one run."""

    exitstatus: int
    collected: int
    tests: tuple[TestOutcome, ...]
    coverage: Mapping[str, FileCoverage] | None = None
    collection_errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunOutcome:
    """How a sandboxed run ended; `result` is None when the plugin wrote nothing usable."""

    status: str  # finished | timeout | crashed
    returncode: int | None
    duration_s: float
    result: PytestResult | None
    output_tail: str = ""
    notes: tuple[str, ...] = ()

    @property
    def problem(self) -> str:
        """'' for a run that finished with results, else why it cannot count as a pass."""
        if self.status == "timeout":
            return f"timed out after {self.duration_s:.1f}s (process group killed)"
        if self.result is None:
            tail = self.output_tail.strip().splitlines()[-1:] or ["no output"]
            return f"pytest crashed (exit {self.returncode}) without a result file: {tail[0]}"
        if self.result.collection_errors:
            return f"collection errors: {'; '.join(self.result.collection_errors[:3])}"
        if not self.result.tests:
            if self.result.exitstatus in (2, 3, 4):
                return f"pytest stopped with status {self.result.exitstatus}: {self._error_line()}"
            return "no tests ran"
        return ""

    def _error_line(self) -> str:
        lines = [ln for ln in self.output_tail.splitlines() if ln.startswith("ERROR")]
        return lines[-1][:200] if lines else "no tests ran"


@dataclass(frozen=True)
class Sandbox:
    """Limits for a run: wall clock, address space, network."""

    timeout_s: float = 300.0
    memory_bytes: int | None = DEFAULT_MEMORY_BYTES
    network: bool = False
    extra_env: Mapping[str, str] = field(default_factory=dict)


def scrubbed_env(base: Mapping[str, str], home: Path, worktree: Path) -> dict[str, str]:
    """The environment a validation run sees: no secrets, a temporary HOME, the worktree first."""
    env = {k: v for k, v in base.items() if not _SECRET.search(k) and not _DROP.search(k)}
    for name in ("cache", "config", "data", "state"):
        (home / name).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        TMPDIR=str(home / "tmp"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_STATE_HOME=str(home / "state"),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONNOUSERSITE="1",
        PIP_NO_INPUT="1",
        GIT_TERMINAL_PROMPT="0",
        SELFHEAL_VALIDATING="1",
        SELFHEAL_DISABLE="1",  # the plugin's own switch: a validation run never heals
        # The worktree's own code must shadow an editable install of the same project.
        PYTHONPATH=os.pathsep.join(str(p) for p in _import_roots(worktree)),
    )
    (home / "tmp").mkdir(exist_ok=True)
    return env


def _import_roots(worktree: Path) -> list[Path]:
    roots = [worktree]
    if (worktree / "src").is_dir():
        roots.insert(0, worktree / "src")
    return roots


@functools.lru_cache(maxsize=1)
def network_prefix() -> tuple[tuple[str, ...], str]:
    """A command prefix that cuts the network, and a note when the machine does not allow it."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return (), "network not isolated: unshare(1) is not installed"
    for prefix in ((unshare, "-n"), (unshare, "-rn")):
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return prefix, ""
    return (), "network not isolated: unprivileged network namespaces are not allowed here"


def pytest_command(
    args: Sequence[str],
    *,
    patch_id: str,
    result_path: Path,
    coverage: bool = False,
    repeat: int = 1,
    workers: int = 0,
) -> list[str]:
    """The pytest command line of a validation run (the plugin writes `result_path`)."""
    cmd = [sys.executable, "-m", "pytest", "-p", RESULT_PLUGIN, "-p", "no:cacheprovider"]
    cmd += [f"--selfheal-validate={patch_id}", f"--selfheal-result={result_path}"]
    cmd += ["-q", "--no-header"]
    if coverage:
        cmd.append("--selfheal-validate-coverage")
        if importlib.util.find_spec("pytest_cov") is not None:
            # Two coverage.py tracers cannot both record; a project's `--cov` would blind ours.
            cmd.append("--no-cov")
    if repeat > 1:
        cmd.append(f"--selfheal-repeat={repeat}")
    if workers > 1:
        cmd += ["-n", str(workers)]
    return [*cmd, *args]


def run_pytest(
    worktree: Path,
    args: Sequence[str],
    *,
    patch_id: str,
    sandbox: Sandbox | None = None,
    coverage: bool = False,
    repeat: int = 1,
    workers: int = 0,
    cancel: threading.Event | None = None,
) -> RunOutcome:
    """Run pytest in `worktree` in a sandbox and read the result file the plugin wrote.

    Setting `cancel` kills the run early (its outcome then counts as a timeout)."""
    sandbox = sandbox or Sandbox()
    with tempfile.TemporaryDirectory(prefix="selfheal-run-") as tmp:
        tmpdir = Path(tmp)
        result_path = tmpdir / "result.json"
        cmd = pytest_command(
            args,
            patch_id=patch_id,
            result_path=result_path,
            coverage=coverage,
            repeat=repeat,
            workers=workers,
        )
        notes: list[str] = []
        if not sandbox.network:
            prefix, note = network_prefix()
            cmd = [*prefix, *cmd]
            notes += [note] if note else []
        env = {**scrubbed_env(os.environ, tmpdir / "home", worktree), **sandbox.extra_env}
        return _execute(cmd, worktree, env, sandbox, result_path, tuple(notes), cancel)


def _execute(  # noqa: PLR0917 - private, called once
    cmd: list[str],
    cwd: Path,
    env: dict[str, str],
    sandbox: Sandbox,
    result_path: Path,
    notes: tuple[str, ...],
    cancel: threading.Event | None,
) -> RunOutcome:
    started = time.monotonic()
    log_path = result_path.with_name("output.txt")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill reaches grandchildren
            preexec_fn=_limits(sandbox.memory_bytes),  # noqa: PLW1509 - only setrlimit, no locks
        )
        try:
            status = _wait(proc, started + sandbox.timeout_s, cancel)
        finally:
            kill_group(proc)
    duration = time.monotonic() - started
    tail = log_path.read_bytes()[-4000:].decode("utf-8", errors="replace")
    result = read_result(result_path) if status == "finished" else None
    if status == "finished" and result is None:
        status = "crashed"
    return RunOutcome(status, proc.returncode, duration, result, tail, notes)


def _wait(proc: subprocess.Popen[bytes], deadline: float, cancel: threading.Event | None) -> str:
    """'finished', or 'timeout' at the deadline or when cancelled."""
    while True:
        step = max(0.0, deadline - time.monotonic())
        if cancel is not None:
            step = min(step, 0.2)
        try:
            proc.wait(timeout=step)
            return "finished"
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                return "timeout"


def _limits(memory_bytes: int | None) -> Any:
    def apply() -> None:
        import resource

        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run's whole process group (children that linger after pytest exits, too)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_result(path: Path) -> PytestResult | None:
    """Parse the plugin's result file; None when it is missing or not what the plugin writes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return _result_from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _result_from_json(data: dict[str, Any]) -> PytestResult:
    tests = tuple(
        TestOutcome(
            str(t["nodeid"]),
            str(t["outcome"]),
            int(t["duration_ns"]),
            int(t.get("attempt", 1)),
            str(t.get("message", "")),
        )
        for t in data["tests"]
    )
    coverage = None
    if data.get("coverage") is not None:
        coverage = {
            str(name): FileCoverage(
                frozenset(fc["statements"]),
                frozenset(fc["missing"]),
                None if fc.get("in_tests") is None else frozenset(fc["in_tests"]),
            )
            for name, fc in data["coverage"].items()
        }
    errors = tuple(str(e) for e in data.get("collection_errors", ()))
    return PytestResult(int(data["exitstatus"]), int(data["collected"]), tests, coverage, errors)
