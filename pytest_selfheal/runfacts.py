"""Facts about a run and its tests that travel between processes: plain, picklable values."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, NamedTuple

# The attribute on teardown reports that carries a test's record to the controller (pytest
# serialises unknown report attributes across the xdist boundary).
REPORT_ATTR = "selfheal_test"

# Our own generator: drawing ids from the global `random` would move the state a test suite
# seeded (random.seed in a fixture or conftest), so its tests would see other numbers with the
# plugin on, and suites that re-seed before every test would hand out the same id twice.
RNG = random.Random()


def new_span_id() -> int:
    return RNG.getrandbits(64) or 1


def new_trace_id() -> int:
    return RNG.getrandbits(128) or 1


@dataclass(frozen=True)
class RunInfo:
    """Facts about the run every process stamps on its spans (the controller computes them)."""

    root: str
    commit: str
    dirty: bool
    env_key: str
    trace_id: int
    session_span_id: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "commit": self.commit,
            "dirty": self.dirty,
            "env_key": self.env_key,
            "trace_id": f"{self.trace_id:032x}",
            "session_span_id": f"{self.session_span_id:016x}",
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> RunInfo:
        return cls(
            str(data["root"]),
            str(data["commit"]),
            bool(data["dirty"]),
            str(data["env_key"]),
            int(data["trace_id"], 16),
            int(data["session_span_id"], 16),
        )


class RecordedTest(NamedTuple):
    """One finished test: enough to make its span later, in another process if need be."""

    nodeid: str
    name: str
    path: str  # posix, relative to the rootdir
    line: int  # 1-based
    thresholds: tuple[tuple[str, float], ...]  # from the selfheal marker
    worker: str
    span_id: int
    start_ns: int
    end_ns: int
    setup_ns: int
    call_ns: int
    teardown_ns: int
    outcome: str
    failure: tuple[str, str, str] | None  # exception type, message, stack
    children: tuple[dict[str, Any], ...]  # the app's spans, as event JSON (records.to_json)

    def to_wire(self) -> list[Any]:
        """Plain lists and scalars (xdist's serialiser refuses named tuples)."""
        return [
            *self[:4],
            [list(t) for t in self.thresholds],
            *self[5:13],
            list(self.failure) if self.failure else None,
            list(self.children),
        ]

    @classmethod
    def from_wire(cls, data: list[Any]) -> RecordedTest:
        if not isinstance(data, list) or len(data) != len(cls._fields):
            raise ValueError(f"expected a list of {len(cls._fields)} fields")
        failure = data[13]
        return cls._make(
            [
                *data[:4],
                tuple((str(k), float(v)) for k, v in data[4]),
                *data[5:13],
                (str(failure[0]), str(failure[1]), str(failure[2])) if failure else None,
                tuple(data[14]),
            ]
        )
