"""The acceptance story in real subprocesses: a new user's repo, regressions, instrumented code."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.plugin.conftest import Project

ARGS = ("--selfheal", "--selfheal-budget=0", "-p", "no:cacheprovider")

INSTRUMENTED = """\
from opentelemetry import trace

tracer = trace.get_tracer("shop")


def load(ids):
    with tracer.start_as_current_span("load_orders"):
        with tracer.start_as_current_span("db.query"):
            return [i * 2 for i in ids]
"""

N_PLUS_ONE = """\
from opentelemetry import trace

tracer = trace.get_tracer("shop")


def load(ids):
    with tracer.start_as_current_span("load_orders"):
        out = []
        for i in ids:
            with tracer.start_as_current_span("db.query"):
                out.append(i * 2)
        return out


def unused_helper(x):
    if x > 3:
        return x - 1
    return x + 1
"""


@pytest.mark.slow
def test_acceptance_slowdown_and_new_failure_named_with_evidence(project: Project) -> None:
    # Long enough that sleep overshoot on a busy machine does not blur a 3x slowdown.
    project.edit("app.py", "seconds=0.01", "seconds=0.06", "slow() takes 60 ms")
    for _ in range(2):
        project.pytester.runpytest_subprocess(*ARGS).assert_outcomes(passed=3)
    project.edit("app.py", "seconds=0.06", "seconds=0.18", "make slow() 3x slower")
    project.edit("app.py", "return a / b", "return a / (b - 2)", "break ratio()")
    result = project.pytester.runpytest_subprocess(*ARGS, "--selfheal-report=json:r.json")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines_random(
        [
            "HIGH     error/new_failure: 1 test(s) newly fail with ZeroDivisionError in ratio*",
            "*performance/slowdown: test_app.py::test_slow is *x slower: median * ms over * runs"
            " vs * ms over 2 earlier runs (p=*)",
        ]
    )
    data = project.report()
    by_subtype = {a["subtype"]: a for a in data["anomalies"]}
    assert set(by_subtype) == {"new_failure", "slowdown"}
    assert by_subtype["slowdown"]["tests"] == ["test_app.py::test_slow"]
    assert 2.0 <= by_subtype["slowdown"]["evidence"]["ratio"] <= 3.5
    assert by_subtype["new_failure"]["evidence"]["signature"] == "ZeroDivisionError@app.py:ratio"
    assert data["baseline_runs"] == 2 and len(data["commit"]) == 40


@pytest.mark.slow
def test_instrumented_code_n_plus_one_and_uncovered_change(project: Project) -> None:
    project.commit(
        {
            "shop.py": INSTRUMENTED,
            "test_shop.py": (
                "import shop\n\n\ndef test_load():\n"
                "    assert shop.load([1, 2, 3, 4, 5]) == [2, 4, 6, 8, 10]\n"
            ),
        },
        "instrumented shop",
    )
    first = project.pytester.runpytest_subprocess(*ARGS, "-v")
    first.stdout.fnmatch_lines(["selfheal: recording to * coverage not due)"])  # nothing to compare
    second = project.pytester.runpytest_subprocess(*ARGS)
    second.stdout.fnmatch_lines(["selfheal: recording to * coverage not due)"])  # nothing changed
    project.commit({"shop.py": N_PLUS_ONE}, "query per id")
    third = project.pytester.runpytest_subprocess(*ARGS, "--selfheal-report=json:r.json")
    third.assert_outcomes(passed=4)
    third.stdout.fnmatch_lines(["selfheal: recording to * coverage refreshing (code changed))"])
    data = project.report()
    subtypes = {(a["subtype"], a["subject"]) for a in data["anomalies"]}
    assert ("n_plus_one", "test_shop.py::test_load") in subtypes
    assert ("uncovered_change", "shop.py") in subtypes
    plus = next(a for a in data["anomalies"] if a["subtype"] == "n_plus_one")
    assert plus["evidence"] == {
        "operation": "db.query",
        "calls_before": 1,
        "calls_now": 5,
        "ratio": 5.0,
    }
    gap = next(a for a in data["anomalies"] if a["subtype"] == "uncovered_change")
    assert gap["evidence"]["lines"] == "16-18"  # the def line ran at import
    json.dumps(data)  # the report is plain JSON
