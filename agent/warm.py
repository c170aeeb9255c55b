"""A pytest process started ahead of need, so a change's tests start without the import wait.

The process imports pytest and the plugins pytest would load (the `pytest11` entry points),
then blocks reading one request from stdin: the run's arguments and output file. It never
imports the project's code before the request, so edited modules are still read fresh; if a
module it did import changed on disk since, it replaces itself with a cold `python -m pytest`.
`SELFHEAL_WARM_IMPORTS=numpy,django` pre-imports heavy test dependencies too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger("selfheal.warm")

SCRIPT = r"""
import json, os, sys, time
from importlib import metadata

started = time.time()
import pytest

extra = [m for m in os.environ.get("SELFHEAL_WARM_IMPORTS", "").split(",") if m.strip()]
for name in [ep.module for ep in metadata.entry_points(group="pytest11")] + extra:
    try:
        __import__(name.strip())
    except Exception:
        pass  # pytest reports a broken plugin itself, in the run

line = sys.stdin.readline()
if not line:
    raise SystemExit(0)
request = json.loads(line)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
out = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(out, 1)
os.dup2(out, 2)


def stale():
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        try:
            if path and os.stat(path).st_mtime > started:
                return True
        except OSError:
            pass
    return False


if stale():
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *request["argv"]])
sys.argv = ["pytest", *request["argv"]]
raise SystemExit(pytest.console_main())
"""


class WarmPytest:
    """One pre-started pytest process; `run` hands it its arguments, once."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, killed whole at a timeout
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, argv: Sequence[str], output: Path) -> subprocess.Popen[bytes] | None:
        """Start the run; None when the process is gone (the caller starts a cold one)."""
        if not self.alive() or self.proc.stdin is None:
            return None
        request = json.dumps({"argv": list(argv), "output": str(output)}) + "\n"
        try:
            self.proc.stdin.write(request.encode())
            self.proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            log.debug("warm pytest went away; starting a cold one")
            self.discard()
            return None
        return self.proc

    def discard(self) -> None:
        """End an unused warm process (closing stdin ends it; the group kill is a backstop)."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()
        try:
            self.proc.wait(2.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait()
