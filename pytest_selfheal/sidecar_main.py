"""The sidecar process: `python -m pytest_selfheal.sidecar_main`, started by the controller."""

from __future__ import annotations

import contextlib
import importlib
import os
import queue
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any

from pytest_selfheal import wire
from pytest_selfheal.afterrun import EndFacts, Events, RunSpec, run_fed

_EOF = ("eof", None)
# What the pipeline imports only once the tests have ended: imported while they still run.
WARM = ("agent.phases.anomaly", "agent.phases.learning", "pytest_selfheal.report")


def _read(stream: IO[bytes], frames: queue.Queue[tuple[str, Any]]) -> None:
    """Reads frames as they come, so that the test process never waits on a full pipe."""
    while True:
        try:
            frames.put(wire.receive(stream))
        except (EOFError, OSError, ValueError):
            frames.put(_EOF)
            return


class FrameFeed:
    """The pipeline's feed (pipeline.TestRun.feed): test records arriving from the session,
    made into events a frame at a time; the END frame brings the session span and the end."""

    def __init__(self, frames: queue.Queue[tuple[str, Any]], spec: RunSpec, out: IO[bytes]):
        self.frames = frames
        self.spec = spec
        self.out = out
        self.events = Events(spec.info)
        self.ended = False
        self._held: list[str] = []  # progress before the end: the session reads it only then

    def __call__(self) -> tuple[tuple[Any, ...], Any]:
        from agent.errors import TelemetryError
        from agent.pipeline import RunEnd

        kind, payload = self.frames.get()
        made: list[Any] = []
        # Frames that queued up while the last chunk was stored join this one: a sidecar that
        # falls behind stores fewer, larger chunks (each chunk is a play and a commit).
        while kind == wire.TESTS:
            made.extend(self.events.make(payload))
            try:
                kind, payload = self.frames.get_nowait()
            except queue.Empty:
                return tuple(made), None
        if kind != wire.END or not isinstance(payload, EndFacts):
            raise TelemetryError("the test session went away before it ended")
        self.ended = True
        wire.send(self.out, wire.STARTED)
        for line in self._held:
            self.progress(line)
        session = self.events.session(self.spec, payload)
        sampler = self.sample if payload.sampler else None
        return (*made, session), RunEnd(payload.coverage, sampler, payload.timed)

    def progress(self, text: str) -> None:
        if self.ended:
            wire.send(self.out, wire.PROGRESS, text)
        else:
            self._held.append(text)

    def sample(self, nodeids: Sequence[str], counts: Mapping[str, int]) -> Mapping[str, Any]:
        """Timing re-runs, done by the session in the process that ran the tests."""
        wire.send(self.out, wire.SAMPLE, (list(nodeids), dict(counts)))
        kind, payload = self.frames.get()
        return payload if kind == wire.SAMPLED and isinstance(payload, dict) else {}


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds: open transactions roll back, workspaces go


def main() -> int:
    # Ctrl-C reaches the whole process group: the session decides (it records an
    # interrupted run, and kills this process if it is interrupted while waiting).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the session's pipe
    frames: queue.Queue[tuple[str, Any]] = queue.Queue()
    threading.Thread(target=_read, args=(sys.stdin.buffer, frames), daemon=True).start()
    kind, spec = frames.get()
    if kind != wire.START or not isinstance(spec, RunSpec):
        return 2
    for name in WARM:
        importlib.import_module(name)
    feed = FrameFeed(frames, spec, out)
    with contextlib.ExitStack() as closing:
        # The pipeline starts now: the telemetry phase stores the run as its tests end.
        parent = feed.events.maker.session_parent()
        outcome = run_fed(spec, feed, parent, feed.progress, closing)
        if not feed.ended:  # the session went away: the run is marked failed, nobody to tell
            return 0
        # Plain values: the session may hold another copy of our classes (pytester in-process
        # runs re-import modules), and unpickled instances of this one would not match it.
        wire.send(out, wire.RESULT, (outcome.data, outcome.problems))
    # The store is closed; nothing else needs cleaning up: skip the interpreter's teardown of
    # everything the run made.
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
