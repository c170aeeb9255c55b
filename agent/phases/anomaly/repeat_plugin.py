"""A pytest plugin for confirming re-runs: runs chosen tests N times, writes outcomes as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

from agent.outcomes import next_outcome

PLAN_ENV = "SELFHEAL_REPEAT_PLAN"

_results: list[dict[str, Any]] = []


def _plan() -> dict[str, Any]:
    path = os.environ.get(PLAN_ENV, "")
    if not path:
        return {}
    plan: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return plan


def outcome_of(reports: list[pytest.TestReport]) -> tuple[str, int]:
    """(outcome, call duration in ns) the same way the selfheal plugin names outcomes."""
    outcome, call_ns = "passed", 0
    for rep in reports:
        if rep.when == "call":
            call_ns = int(rep.duration * 1e9)
        outcome = next_outcome(outcome, rep)
    return outcome, call_ns


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool:
    counts: dict[str, int] = _plan().get("counts", {})
    times = max(1, int(counts.get(item.nodeid, 1)))
    for i in range(times):
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        outcome, call_ns = outcome_of(reports)
        _results.append({"nodeid": item.nodeid, "outcome": outcome, "call_ns": call_ns})
        if i < times - 1:
            item._initrequest()  # type: ignore[attr-defined]  # fresh fixtures, as rerunfailures does
    return True


def pytest_sessionfinish(session: pytest.Session) -> None:
    out = _plan().get("out")
    if out:
        Path(out).write_text(json.dumps(_results), encoding="utf-8")
