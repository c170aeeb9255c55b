"""The agent's status file, lock, token and log: start, find, check and stop it safely."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import logging.handlers
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from agent.errors import SelfHealError

STATUS_FILE = "agent.json"
LOCK_FILE = "agent.lock"
TOKEN_FILE = "agent.token"
LOG_FILE = "agent.log"
BOOT_FILE = "agent.out"  # stdout/stderr of a detached agent, for crashes before logging starts
LOG_BYTES = 1_000_000
LOG_BACKUPS = 3

# LSB init-script status codes (as `dmypy status` uses them).
RUNNING, DEAD_STALE, NOT_RUNNING, UNKNOWN = 0, 1, 3, 4


class AgentError(SelfHealError):
    """The agent cannot be started, found or stopped."""


@dataclass(frozen=True)
class AgentStatus:
    """What `.selfheal/agent.json` records about a running agent."""

    pid: int
    port: int  # the local control endpoint on 127.0.0.1
    started_ns: int
    proc_start: str  # the kernel's start time of `pid`, so a reused pid is never mistaken for us
    token_file: str
    log_file: str
    root: str
    otlp_port: int = 0  # 0: the OTLP receiver is not listening

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: Path) -> AgentStatus:
        try:
            return cls(**data)
        except TypeError as exc:
            raise AgentError(f"{where}: not an agent status file ({exc})") from None


@dataclass(frozen=True)
class Paths:
    """Where the agent keeps its files under `<root>/.selfheal/`."""

    directory: Path

    @property
    def status(self) -> Path:
        return self.directory / STATUS_FILE

    @property
    def lock(self) -> Path:
        return self.directory / LOCK_FILE

    @property
    def token(self) -> Path:
        return self.directory / TOKEN_FILE

    @property
    def log(self) -> Path:
        return self.directory / LOG_FILE

    @property
    def boot(self) -> Path:
        return self.directory / BOOT_FILE


# Process identity ---------------------------------------------------------------------------


def process_start(pid: int) -> str:
    """The kernel's start time of `pid` ("" when it does not exist): pid + start is unique."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return ""
    except OSError:
        return _ps_start(pid)
    # Field 2 (comm) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _ps_start(pid: int) -> str:
    # Without /proc (macOS, BSD) ps gives the start time to the second; good enough with the pid.
    proc = subprocess.run(
        ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else ""


def process_cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return ""
    except OSError:
        proc = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        return proc.stdout.strip()
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_ours(status: AgentStatus) -> bool:
    """True only for the very process the status file describes, and only if it is an agent."""
    if status.pid <= 1 or not status.proc_start:
        return False
    if process_start(status.pid) != status.proc_start:
        return False
    cmdline = process_cmdline(status.pid)
    return "agent" in cmdline and "run" in cmdline


# Status file and lock -----------------------------------------------------------------------


def read_status(paths: Paths) -> AgentStatus | None:
    try:
        text = paths.status.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AgentError(f"{paths.status}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AgentError(f"{paths.status}: not valid JSON ({exc})") from None
    return AgentStatus.from_json(data, paths.status)


def write_status(paths: Paths, status: AgentStatus) -> None:
    """Write atomically so a reader never sees half a file."""
    tmp = paths.status.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(status.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(paths.status)


def remove_status(paths: Paths, pid: int) -> None:
    """Remove the status file only if it still describes `pid` (a newer agent may own it)."""
    with contextlib.suppress(AgentError):
        current = read_status(paths)
        if current is not None and current.pid == pid:
            paths.status.unlink(missing_ok=True)


@contextlib.contextmanager
def hold_lock(paths: Paths) -> Iterator[IO[str]]:
    """Hold the agent lock for the life of the agent; a second agent gets a clear error."""
    paths.directory.mkdir(parents=True, exist_ok=True)
    handle = paths.lock.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise AgentError(already_running_message(paths)) from None
        yield handle
    finally:
        handle.close()  # closing the descriptor releases the flock


def lock_is_held(paths: Paths) -> bool:
    """Whether some process holds the agent lock (the lock dies with its holder, even on -9)."""
    if not paths.lock.exists():
        return False
    with paths.lock.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def already_running_message(paths: Paths) -> str:
    try:
        status = read_status(paths)
    except AgentError:
        status = None
    if status is None:
        return f"an agent is already starting in {paths.directory.parent}"
    return (
        f"an agent is already running in {status.root} (pid {status.pid}, "
        f"control port {status.port}); use `selfheal agent stop` first"
    )


def new_token(paths: Paths) -> str:
    """A fresh random token, readable by the owner only."""
    token = secrets.token_urlsafe(32)
    fd = os.open(paths.token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


def read_token(status: AgentStatus) -> str:
    try:
        return Path(status.token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AgentError(f"{status.token_file}: cannot read the agent token: {exc}") from None


# Queries and control ------------------------------------------------------------------------


def check(paths: Paths) -> tuple[int, AgentStatus | None]:
    """LSB status: RUNNING, DEAD_STALE (a status file whose agent is gone) or NOT_RUNNING."""
    status = read_status(paths)
    if status is None:
        return (RUNNING if lock_is_held(paths) else NOT_RUNNING), None
    if is_ours(status):
        return RUNNING, status
    return DEAD_STALE, status


def stop(paths: Paths, timeout_s: float = 10.0) -> tuple[str, int]:
    """SIGTERM, then SIGKILL after `timeout_s`; returns (what happened, LSB-like exit code)."""
    code, status = check(paths)
    if status is None:
        return "no agent is running", 0
    if code != RUNNING:
        paths.status.unlink(missing_ok=True)
        return (
            f"the agent (pid {status.pid}) was not running; removed its stale status file",
            0,
        )
    os.kill(status.pid, signal.SIGTERM)
    if _wait_gone(status, timeout_s):
        return f"stopped the agent (pid {status.pid})", 0
    if is_ours(status):
        os.kill(status.pid, signal.SIGKILL)
        _wait_gone(status, 5.0)
    remove_status(paths, status.pid)
    return f"the agent (pid {status.pid}) did not stop in {timeout_s:g}s; killed it", 0


def _wait_gone(status: AgentStatus, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_ours(status) or _is_zombie(status.pid):
            return True
        time.sleep(0.05)  # only while stopping, never while idle
    return False


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def spawn_detached(paths: Paths, argv: list[str], timeout_s: float = 20.0) -> AgentStatus:
    """Start `argv` in its own session, wait for its status file, and return it."""
    code, _ = check(paths)
    if code == RUNNING:
        raise AgentError(already_running_message(paths))
    paths.directory.mkdir(parents=True, exist_ok=True)
    with paths.boot.open("wb") as boot:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=boot,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the terminal closing; its own process group
            close_fds=True,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = _read_quietly(paths)
        if current is not None and current.pid == proc.pid:
            return current
        if proc.poll() is not None:
            raise AgentError(f"the agent exited at start (code {proc.returncode}): {_tail(paths)}")
        time.sleep(0.05)
    proc.terminate()
    raise AgentError(f"the agent did not start within {timeout_s:g}s: {_tail(paths)}")


def _read_quietly(paths: Paths) -> AgentStatus | None:
    try:
        return read_status(paths)
    except AgentError:
        return None  # being replaced right now


def _tail(paths: Paths) -> str:
    try:
        lines = paths.boot.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no output)"
    errors = [line for line in lines if line.startswith("selfheal: error:")]
    return (errors or lines or ["(no output)"])[-1]


def agent_argv(root: Path, extra: list[str]) -> list[str]:
    """The command a detached agent runs: the same interpreter, `selfheal agent run`."""
    return [sys.executable, "-m", "agent.cli", "--root", str(root), "agent", "run", *extra]


# Logging ------------------------------------------------------------------------------------


def setup_logging(paths: Paths, *, to_stderr: bool, level: int = logging.INFO) -> logging.Logger:
    """The `selfheal` logger: a rotating file under .selfheal/, and stderr in the foreground."""
    logger = logging.getLogger("selfheal")
    logger.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(
            paths.log, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    ]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def teardown_logging(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
