"""Frames between the controller and its sidecar: pickled tuples (kind, payload) on pipes."""

from __future__ import annotations

import pickle
from typing import IO, Any

# Controller -> sidecar
START = "start"  # RunSpec
TESTS = "tests"  # list[RecordedTest]
END = "end"  # EndFacts
SAMPLED = "sampled"  # {nodeid: durations}
# Sidecar -> controller
STARTED = "started"  # None: the end arrived; detection (which writes the store) runs now
PROGRESS = "progress"  # str
SAMPLE = "sample"  # (nodeids, counts)
RESULT = "result"  # (data, problems) of afterrun.Outcome


def send(stream: IO[bytes], kind: str, payload: Any = None) -> None:
    pickle.dump((kind, payload), stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


def receive(stream: IO[bytes]) -> tuple[str, Any]:
    """The next frame; EOFError when the other side has gone."""
    frame = pickle.load(stream)
    if not (isinstance(frame, tuple) and len(frame) == 2 and isinstance(frame[0], str)):
        raise ValueError(f"not a sidecar frame: {type(frame).__name__}")
    return frame[0], frame[1]
