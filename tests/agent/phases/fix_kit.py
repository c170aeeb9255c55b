"""Builders shared by the fix-strategy tests: a FixWork over in-memory sources."""

from __future__ import annotations

import time
from collections.abc import Mapping

from agent.phases.diagnosis.pytest_exec import Frame
from agent.phases.fix.base import FixWork
from agent.records import Anomaly, AnomalyKind, CodeLocation, Diagnosis, Severity
from conftest import commit_files, git  # noqa: F401 - the root conftest's, for the fix tests


def work(
    sources: Mapping[str, str],
    suspicious: tuple[tuple[str, int], ...] = (),
    *,
    exception: str = "",
    frames: tuple[Frame, ...] = (),
    culprit_diff: str = "",
    hot: tuple[CodeLocation, ...] = (),
    kind: AnomalyKind = AnomalyKind.ERROR,
    llm_reply: str = "",
    observations: Mapping[str, str] | None = None,
) -> FixWork:
    anomaly = Anomaly(
        "a1",
        kind,
        "new_failure",
        Severity.HIGH,
        1.0,
        "tests/test_m.py::test_x",
        "it broke",
        time.time_ns(),
        tests=("tests/test_m.py::test_x",),
    )
    diagnosis = Diagnosis("d1", "a1", time.time_ns(), culprit_commit="c0ffee")
    return FixWork(
        anomaly=anomaly,
        diagnosis=diagnosis,
        sources=dict(sources),
        suspicious=suspicious,
        frames=frames,
        exception=exception,
        culprit_diff=culprit_diff,
        hot=hot,
        llm_reply=llm_reply,
        observations=dict(observations or {}),
    )


def run(source: str, name: str, *args: object) -> object:
    """Call function `name` of a module given as text (the candidate's behaviour)."""
    namespace: dict[str, object] = {}
    exec(compile(source, "<candidate>", "exec"), namespace)
    func = namespace[name]
    assert callable(func)
    return func(*args)
