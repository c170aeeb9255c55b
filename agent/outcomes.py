"""How a test's setup, call and teardown reports name its outcome (one rule for every caller)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def next_outcome(current: str, rep: pytest.TestReport) -> str:
    """A test's outcome name after one more of its reports (setup, call, teardown).

    The one naming rule for the plugin's recorder and for confirming re-runs.
    """
    xfail = hasattr(rep, "wasxfail")
    if rep.when == "call":
        if rep.passed:
            return "xpassed" if xfail else "passed"
        if rep.skipped:
            return "xfailed" if xfail else "skipped"
        return "failed"
    if rep.failed:
        return "error" if current in ("passed", "xpassed") else current
    if rep.skipped and rep.when == "setup":
        return "xfailed" if xfail else "skipped"
    return current
