"""The verdict's pure checks and the test selection, as truth tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.coverage_map import CoverageMap
from agent.patches import check_patch
from agent.phases.validation import checks, docrefs
from agent.phases.validation.checks import CoverageFigures
from agent.phases.validation.selection import select, workers_for
from agent.runner import FileCoverage, PytestResult, RunOutcome, TestOutcome


def _outcome(*tests: tuple[str, str], exitstatus: int = 0, status: str = "finished") -> RunOutcome:
    result = PytestResult(exitstatus, len(tests), tuple(TestOutcome(n, o, 1000) for n, o in tests))
    return RunOutcome(status, exitstatus, 1.0, result if status == "finished" else None)


def test_check_run_truth_table() -> None:
    assert checks.check_run("tests", _outcome(("a", "passed"), ("b", "skipped"))).passed
    failed = checks.check_run("tests", _outcome(("a", "passed"), ("b", "failed"), exitstatus=1))
    assert not failed.passed and "1 failing: b" in failed.reason
    assert not checks.check_run("tests", _outcome(("a", "xpassed"))).passed
    assert checks.check_run("tests", _outcome()).reason == "no tests ran"
    assert checks.check_run("doctests", _outcome(exitstatus=5), require_tests=False).passed
    timeout = checks.check_run("tests", _outcome(status="timeout"))
    assert not timeout.passed and "timed out" in timeout.reason


def test_repeats_need_every_attempt_to_pass() -> None:
    runs = [("t", "passed"), ("t", "passed"), ("t", "failed")]
    assert not checks.check_repeats(_outcome(*runs, exitstatus=1), ["t"], 3).passed
    assert checks.check_repeats(_outcome(*[("t", "passed")] * 3), ["t"], 3).passed
    two = checks.check_repeats(_outcome(*[("t", "passed")] * 2), ["t"], 3)
    assert not two.passed and "t 2/3" in two.reason
    missing = checks.check_repeats(_outcome(("u", "passed")), ["t"], 1)
    assert not missing.passed and "did not run: t" in missing.reason
    assert checks.check_repeats(_outcome(("f.py::t", "passed")), ["f.py"], 1).passed


@pytest.mark.parametrize(
    ("before", "after", "ok"),
    [
        (CoverageFigures(8, 10, 1, 1), CoverageFigures(8, 10, 1, 1), True),
        (CoverageFigures(8, 10, 1, 1), CoverageFigures(9, 12, 1, 1), False),  # 80% → 75%
        (CoverageFigures(8, 10, 1, 1), CoverageFigures(10, 12, 1, 3), False),  # changed 1/3
        (CoverageFigures(8, 10, 0, 0), CoverageFigures(10, 12, 2, 2), True),  # insertion, covered
        (CoverageFigures(0, 0, 0, 0), CoverageFigures(0, 0, 0, 0), True),  # nothing measurable
    ],
)
def test_coverage_may_not_fall(before: CoverageFigures, after: CoverageFigures, ok: bool) -> None:
    assert checks.check_coverage(before, after).passed is ok


def test_coverage_figures_skip_test_files() -> None:
    cov = {
        "pkg/m.py": FileCoverage(frozenset({1, 2, 3, 4}), frozenset({4})),
        "tests/test_m.py": FileCoverage(frozenset({1, 2}), frozenset({2})),
    }
    figures = checks.coverage_figures(cov, {"pkg/m.py": (3, 4, 9)})
    assert figures == CoverageFigures(3, 4, 1, 2)


@pytest.mark.parametrize(
    ("current_ms", "ok"),
    [((10, 11, 10), True), ((12, 12, 12), True), ((150, 160, 155), False), ((14, 14, 14), True)],
)
def test_performance_uses_ratio_and_floor(current_ms: tuple[int, ...], ok: bool) -> None:
    baseline = [10_000_000] * 5
    current = [m * 1_000_000 for m in current_ms]
    # 14 ms is 1.4x but only 4 ms more: under the 5 ms floor, timer noise.
    assert checks.check_performance(current, baseline, 1.25, 5e6).passed is ok


def test_performance_without_samples_fails() -> None:
    assert not checks.check_performance([], [1], 1.25, 0).passed
    assert not checks.check_performance([1], [], 1.25, 0).passed


def test_syntax_of_python_json_and_toml() -> None:
    good = {"a.py": "x = 1\n", "b.json": "{}", "c.toml": "a = 1\n", "gone.py": None}
    assert checks.check_syntax(good).passed
    bad = checks.check_syntax({"a.py": "def f(:\n", "b.json": "{", "c.toml": "a = "})
    assert not bad.passed and "a.py:1" in bad.reason and "b.json" in bad.reason


def test_removed_definitions_and_doc_references(tmp_path: Path) -> None:
    diff = (
        "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n"
        "-def old():\n-    return 1\n+def new():\n+    return 1\n"
    )
    assert checks.removed_definitions(check_patch(diff)) == {"m.py": {"old"}}
    (tmp_path / "README.md").write_text("Use `old()`.\n\n```\nfrom m import new\n```\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "api.rst").write_text("Example::\n\n    old()\n\nold is prose.\n")
    refs = docrefs.references(tmp_path, {"old"})
    assert refs == {"README.md": ("old",), "docs/api.rst": ("old",)}
    result = checks.check_doc_references({"m.py": ("old",)}, refs)
    assert not result.passed and "README.md mentions old" in result.reason


def _map() -> CoverageMap:
    return CoverageMap(
        1,
        "c",
        False,
        0,
        {"m.py": frozenset({1, 2, 3, 5, 6})},
        {"t::a": {"m.py": frozenset({2, 3})}, "t::b": {"m.py": frozenset({6})}},
    )


def _edit(body: str) -> str:
    return f"diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n{body}"


def test_selection_follows_the_changed_lines() -> None:
    changed = check_patch(_edit("@@ -3 +3 @@\n-x\n+y\n"))
    assert select(changed, [], _map(), "affected").tests == ("t::a",)
    inserted = check_patch(_edit("@@ -5,2 +5,3 @@\n x\n+y\n z\n"))  # between lines 5 and 6
    assert select(inserted, [], _map(), "affected").tests == ("t::b",)
    import_time = check_patch(_edit("@@ -1 +1 @@\n-x\n+y\n"))  # def line: no test context
    assert select(import_time, [], _map(), "affected").tests == ("t::a", "t::b")


def test_selection_falls_back_to_the_full_suite() -> None:
    changed = check_patch(_edit("@@ -3 +3 @@\n-x\n+y\n"))
    assert select(changed, [], None, "affected").full
    assert select(changed, [], _map(), "full").full
    assert select(changed, [], _map(), "affected", stale_files={"m.py"}).full
    conftest = check_patch(_edit("@@ -3 +3 @@\n-x\n+y\n").replace("m.py", "conftest.py"))
    assert select(conftest, [], _map(), "affected").full
    data = check_patch(_edit("@@ -3 +3 @@\n-x\n+y\n").replace("m.py", "data.json"))
    assert select(data, [], _map(), "affected").full


def test_xdist_only_for_large_sets() -> None:
    assert workers_for(10, cpus=8) == 0
    assert workers_for(5000, cpus=1) == 0
    assert workers_for(5000, cpus=2) == 2


def test_repeats_judge_only_the_anomalys_own_tests() -> None:
    run = _outcome(*[("t", "passed")] * 3, ("other", "failed"), exitstatus=1)
    assert checks.check_repeats(run, ["t"], 3).passed
    assert not checks.check_run("tests", run).passed


def test_import_time_changes_are_told_apart_from_in_test_lines() -> None:
    # Line 3 (a decorator) ran at import only; line 5 ran inside a test; line 7 never ran.
    cov = {"pkg/m.py": FileCoverage(frozenset({3, 5, 7}), frozenset({7}), frozenset({5}))}
    assert checks.import_time_changes(cov, {"pkg/m.py": (3,)})
    assert not checks.import_time_changes(cov, {"pkg/m.py": (5, 7)})
    assert not checks.import_time_changes(cov, {"other.py": (3,)})
