"""heal(): diagnosis, fix and the gate for one anomaly, ending in a patch file or a reason."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.conductor import Conductor
from agent.config import load_config
from agent.heal import heal, schedule
from agent.records import Anomaly, AnomalyKind, Severity
from conftest import git

pytestmark = pytest.mark.slow

RATIOS = """def ratio(ok, total):
    return ok / total


def percent(ok, total):
    return round(100 * ratio(ok, total), 1)
"""
TESTS = """from ratios import percent, ratio


def test_ratio():
    assert ratio(1, 4) == 0.25


def test_percent_of_nothing():
    assert percent(0, 0) == 0.0
"""


def _anomaly(repo: Path, tests: tuple[str, ...]) -> Anomaly:
    head = git(repo, "rev-parse", "HEAD").strip()
    return Anomaly(
        "an-heal",
        AnomalyKind.ERROR,
        "failing",
        Severity.HIGH,
        1.0,
        tests[0],
        "fails",
        time.time_ns(),
        commit=head,
        tests=tests,
    )


def test_a_failing_test_without_history_is_healed(make_repo) -> None:
    repo = make_repo({"ratios.py": RATIOS, "tests/test_ratios.py": TESTS, "conftest.py": ""})
    lines: list[str] = []
    with Conductor(load_config(repo), progress=lines.append) as conductor:
        outcome = heal(
            conductor,
            [_anomaly(repo, ("tests/test_ratios.py::test_percent_of_nothing",))],
            120,
            lines.append,
        )
    (result,) = outcome.results
    assert result.best is not None and result.path is not None, result.reason
    assert result.path.parent == repo / ".selfheal" / "patches"
    assert result.best.result.passed and result.best.patch.strategy == "repair_template"
    assert any(line.startswith("diagnosis:") for line in lines)  # progress was visible
    assert outcome.lines(repo)[0].startswith("healed tests/test_ratios.py::test_percent_of_nothing")
    assert git(repo, "status", "--porcelain") == ""
    git(repo, "apply", str(result.path))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:selfheal"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout


def test_no_validated_patch_is_reported_with_its_reason(make_repo) -> None:
    repo = make_repo({"ratios.py": RATIOS, "tests/test_ratios.py": TESTS, "conftest.py": ""})
    with Conductor(load_config(repo)) as conductor:
        outcome = heal(conductor, [_anomaly(repo, ("tests/test_ratios.py::test_ratio",))], 60)
    (result,) = outcome.results
    assert result.best is None and result.path is None
    assert "does not reproduce" in result.reason
    assert outcome.lines()[0].startswith("not healed tests/test_ratios.py::test_ratio: ")
    assert not (repo / ".selfheal" / "patches").exists()


def test_a_zero_budget_heals_nothing_and_says_so(make_repo) -> None:
    repo = make_repo({"ratios.py": RATIOS, "tests/test_ratios.py": TESTS})
    with Conductor(load_config(repo)) as conductor:
        outcome = heal(conductor, [_anomaly(repo, ("tests/test_ratios.py::test_ratio",))], 0)
    assert outcome.results[0].reason == "the healing budget ran out"


def test_cheap_kinds_are_healed_first_then_the_most_severe() -> None:
    def anomaly(aid: str, kind: AnomalyKind, severity: Severity) -> Anomaly:
        return Anomaly(aid, kind, "x", severity, 0.9, aid, "", 0)

    slow = anomaly("slow", AnomalyKind.PERFORMANCE, Severity.CRITICAL)
    broken = anomaly("broken", AnomalyKind.ERROR, Severity.HIGH)
    worse = anomaly("worse", AnomalyKind.ERROR, Severity.CRITICAL)
    gap = anomaly("gap", AnomalyKind.COVERAGE, Severity.LOW)
    # A critical slowdown's diagnosis (timings at two commits) would otherwise eat the time a
    # new failure needs; the slowdown still gets its share and whatever the others leave.
    assert [a.id for a in schedule([slow, gap, broken, worse])] == [
        "worse",
        "broken",
        "gap",
        "slow",
    ]
