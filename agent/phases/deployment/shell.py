"""Run the user's CI, deploy and verify commands: own process group, timeout, output tail kept."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CommandOutcome:
    command: str
    ok: bool
    returncode: int | None  # None: killed at the timeout or could not start
    duration_ns: int
    tail: str  # the last lines of output, for the record and the reason

    @property
    def summary(self) -> str:
        code = "timed out" if self.returncode is None else f"exit {self.returncode}"
        last = self.tail.strip().splitlines()[-1:] if self.tail.strip() else []
        return f"`{self.command}` {code}" + (f": {last[0]}" if last else "")


def run_command(
    command: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 600.0
) -> CommandOutcome:
    """Run `command` through the shell; the whole process group is killed at the timeout."""
    started = time.monotonic_ns()
    try:
        proc = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        return CommandOutcome(command, False, None, time.monotonic_ns() - started, str(exc))
    try:
        out, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        # Grandchildren (a test runner's workers) share the group; kill them all.
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = None
        out = (out or "") + f"\n(killed after {timeout:.0f} s)"
    tail = "\n".join((out or "").strip().splitlines()[-20:])
    return CommandOutcome(command, code == 0, code, time.monotonic_ns() - started, tail)
