"""The controller's side of its sidecar, the process that makes the spans and runs the pipeline."""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pytest_selfheal import wire
from pytest_selfheal.afterrun import EndFacts, Outcome, Progress, RunSpec, Sampler
from pytest_selfheal.runfacts import RecordedTest

# SELFHEAL_SIDECAR=0 keeps everything in the pytest process (to debug the pipeline, say).
ENV = "SELFHEAL_SIDECAR"
BATCH = 50  # records per frame: what the sidecar has left to store when the session ends


def wanted() -> bool:
    return os.environ.get(ENV, "1") != "0"


class Sidecar:
    """One sidecar process for one session. Every failure is remembered in `failure`, and
    `finish` then returns None; `started` says whether the pipeline had begun by then."""

    def __init__(self, proc: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
        self.proc = proc
        self.errors = errors
        self.failure = ""
        self.started = False
        self._pending: list[RecordedTest] = []

    @classmethod
    def start(cls, spec: RunSpec) -> Sidecar:
        """Starts the process and sends it the run's facts; OSError if it cannot start."""
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the sidecar is reaped
        env = dict(os.environ)
        # The sidecar imports these packages from wherever this process did.
        here = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            # -P: the working directory (the user's project) must not shadow our packages.
            [sys.executable, "-P", "-m", "pytest_selfheal.sidecar_main"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        side = cls(proc, errors)
        side._send(wire.START, spec)
        return side

    def add(self, record: RecordedTest) -> None:
        self._pending.append(record)
        if len(self._pending) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self._send(wire.TESTS, batch)

    def _send(self, kind: str, payload: Any = None) -> None:
        if self.failure:
            return
        try:
            assert self.proc.stdin is not None
            wire.send(self.proc.stdin, kind, payload)
        except (OSError, ValueError) as exc:  # gone: a broken pipe, or a closed one
            self._fail(f"cannot write to it: {exc}")

    def finish(self, end: EndFacts, progress: Progress, sampler: Sampler | None) -> Outcome | None:
        """The pipeline's outcome, with progress shown and re-runs served meanwhile."""
        self._flush()
        self._send(wire.END, end)
        try:
            return self._serve(progress, sampler)
        except BaseException:  # Ctrl-C while waiting: the sidecar goes with the session
            self.proc.kill()
            raise
        finally:
            self._reap()

    def _serve(self, progress: Progress, sampler: Sampler | None) -> Outcome | None:
        assert self.proc.stdout is not None
        handlers: dict[str, Callable[[Any], None]] = {
            wire.PROGRESS: lambda text: progress(str(text)),
            wire.STARTED: lambda _: setattr(self, "started", True),
            wire.SAMPLE: lambda ask: self._send(
                wire.SAMPLED, dict(sampler(*ask)) if sampler is not None else {}
            ),
        }
        while not self.failure:
            try:
                kind, payload = wire.receive(self.proc.stdout)
            except (EOFError, OSError, ValueError) as exc:
                self._fail(f"it ended without a result ({type(exc).__name__})")
                break
            if kind == wire.RESULT:
                outcome = _outcome(payload)
                if outcome is None:
                    self._fail("it sent an unreadable result")
                return outcome
            handler = handlers.get(kind)
            if handler is None:
                self._fail(f"it sent an unknown frame {kind!r}")
                break
            handler(payload)
        return None

    def _fail(self, reason: str) -> None:
        if not self.failure:
            self.failure = reason

    def _reap(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if not self.failure:
            # It has sent its result and is closing the store (a WAL checkpoint): the
            # session need not wait for that, only reap it before the interpreter exits.
            atexit.register(_reap_later, self.proc, self.errors)
            return
        _wait(self.proc, timeout=10)
        self.failure += self._stderr_tail()
        self.errors.close()

    def _stderr_tail(self) -> str:
        self.errors.seek(0)
        lines = self.errors.read().decode(errors="replace").strip().splitlines()
        return f": {lines[-1]}" if lines else f" (exit status {self.proc.returncode})"

    def abandon(self) -> None:
        """No finish after all (the session ended early): the sidecar stores nothing."""
        self._fail("the session ended before its tests did")
        self.proc.kill()
        self._reap()


def _reap_later(proc: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
    _wait(proc, timeout=30)
    errors.close()


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Reap the process, killing it if it has not ended within `timeout` seconds."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _outcome(payload: Any) -> Outcome | None:
    try:
        data, problems = payload
        return Outcome(dict(data), [str(p) for p in problems])
    except (TypeError, ValueError):
        return None
