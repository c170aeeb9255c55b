"""The verdict's checks as pure functions: each returns a CheckResult that names why it failed."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent import stats
from agent.patches import CheckedPatch
from agent.records import CheckResult
from agent.runner import FileCoverage, RunOutcome, TestOutcome

_BAD_OUTCOMES = ("failed", "error", "xpassed")
_DEF = re.compile(r"^\s*(?:async\s+def|def|class)\s+([A-Za-z_][A-Za-z0-9_]*)")
TEST_FILE = re.compile(r"(^|/)(test_[^/]*\.py|[^/]*_test\.py|conftest\.py)$")


def check_run(name: str, run: RunOutcome, *, require_tests: bool = True) -> CheckResult:
    """A run counts only when it finished, wrote results and (usually) ran something."""
    problem = run.problem
    if problem == "no tests ran" and not require_tests:
        return CheckResult(name, True, "nothing to run")
    if problem:
        return CheckResult(name, False, problem)
    assert run.result is not None
    failed = [t for t in run.result.tests if t.outcome in _BAD_OUTCOMES]
    if failed:
        return CheckResult(name, False, _describe_failures(failed))
    if run.result.exitstatus not in (0, 5):
        return CheckResult(name, False, f"pytest exited with status {run.result.exitstatus}")
    passed = sum(1 for t in run.result.tests if t.outcome == "passed")
    return CheckResult(name, True, f"{passed} passed")


def _describe_failures(failed: Sequence[TestOutcome]) -> str:
    names = sorted({t.nodeid for t in failed})
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    first = failed[0].message
    return f"{len(names)} failing: {shown}" + (f" ({first})" if first else "")


def check_repeats(
    run: RunOutcome, tests: Collection[str], repeats: int, name: str = "anomaly-tests"
) -> CheckResult:
    """The anomaly's own tests pass `repeats` times in a row, each of them (other tests in the
    same run are judged by the `tests` check, not here)."""
    if run.problem:
        return CheckResult(name, False, run.problem)
    assert run.result is not None
    own = [t for t in run.result.tests if _is_own(t.nodeid, tests)]
    failed = [t for t in own if t.outcome in _BAD_OUTCOMES]
    if failed:
        return CheckResult(name, False, _describe_failures(failed))
    attempts: dict[str, int] = {}
    for t in run.result.tests:
        if t.outcome == "passed":
            attempts[t.nodeid] = attempts.get(t.nodeid, 0) + 1
    short = {n: attempts.get(n, 0) for n in tests if attempts.get(n, 0) < repeats}
    missing = [n for n, c in short.items() if c == 0 and not _ran_under(n, attempts)]
    if missing:
        return CheckResult(name, False, f"did not run: {', '.join(sorted(missing)[:5])}")
    short = {n: c for n, c in short.items() if c and not _ran_under(n, attempts, repeats)}
    if short:
        text = ", ".join(f"{n} {c}/{repeats}" for n, c in sorted(short.items())[:5])
        return CheckResult(name, False, f"not {repeats} passes in a row: {text}")
    return CheckResult(name, True, f"{len(tests)} test(s) passed {repeats} times in a row")


def _is_own(nodeid: str, selectors: Collection[str]) -> bool:
    return nodeid in selectors or any(nodeid.startswith(s + "::") for s in selectors)


def _ran_under(selector: str, attempts: Mapping[str, int], repeats: int = 1) -> bool:
    """A file or class selector counts when every test under it passed often enough."""
    under = [c for n, c in attempts.items() if n.startswith(selector + "::")]
    return bool(under) and min(under) >= repeats


@dataclass(frozen=True)
class CoverageFigures:
    """Covered and executable lines: in total and on the changed lines."""

    covered: int
    statements: int
    changed_covered: int
    changed_statements: int

    @property
    def total(self) -> float | None:
        return self.covered / self.statements if self.statements else None

    @property
    def changed(self) -> float | None:
        return self.changed_covered / self.changed_statements if self.changed_statements else None


def source_files(coverage: Mapping[str, FileCoverage]) -> dict[str, FileCoverage]:
    """Project source files: tests and conftest files are not what coverage is about."""
    return {name: fc for name, fc in coverage.items() if not TEST_FILE.search(name)}


def coverage_figures(
    coverage: Mapping[str, FileCoverage], changed: Mapping[str, Collection[int]]
) -> CoverageFigures:
    """Totals over project source files; `changed` maps a file to the lines of interest."""
    files = source_files(coverage)
    covered = sum(len(fc.covered) for fc in files.values())
    statements = sum(len(fc.statements) for fc in files.values())
    ch_cov = ch_all = 0
    for name, lines in changed.items():
        fc = files.get(name)
        if fc is None:
            continue
        relevant = fc.statements & set(lines)
        ch_all += len(relevant)
        ch_cov += len(relevant & fc.covered)
    return CoverageFigures(covered, statements, ch_cov, ch_all)


@dataclass(frozen=True)
class MapLines:
    """The base commit's executable lines and the lines the selected tests ran there, from the
    stored per-test coverage map (lines run inside tests only, as the map records them)."""

    statements: Mapping[str, frozenset[int]]
    covered: Mapping[str, frozenset[int]]


def in_test_coverage(
    base: MapLines, after: Mapping[str, FileCoverage]
) -> tuple[dict[str, FileCoverage], dict[str, FileCoverage]] | None:
    """(before, after) on the map's terms: lines run inside tests, over the files the candidate
    run measured. None when the run did not record which lines ran inside tests."""
    if any(fc.in_tests is None for fc in after.values()):
        return None
    now = {
        f: FileCoverage(fc.statements, fc.statements - (fc.in_tests or frozenset()))
        for f, fc in after.items()
    }
    then = {
        f: FileCoverage(stmts, stmts - base.covered.get(f, frozenset()))
        for f, stmts in base.statements.items()
        if f in now
    }
    return then, now


def import_time_changes(
    after: Mapping[str, FileCoverage], changed: Mapping[str, Collection[int]]
) -> bool:
    """Whether a changed line ran, but only at import time (a decorator, a def line, a
    module-level statement): lines-run-inside-tests figures cannot judge such a patch."""
    for name, lines in changed.items():
        fc = after.get(name)
        if fc is None or fc.in_tests is None:
            continue
        if (fc.covered - fc.in_tests) & set(lines):
            return True
    return False


def patched_lines(patch: CheckedPatch) -> dict[str, tuple[int, ...]]:
    return {f.path: f.added for f in patch.files if f.path and f.added}


def base_lines(patch: CheckedPatch) -> dict[str, tuple[int, ...]]:
    return {f.source_path: f.removed for f in patch.files if f.source_path and f.removed}


def check_coverage(before: CoverageFigures, after: CoverageFigures) -> CheckResult:
    """Total coverage and changed-line coverage may not fall below the base commit's."""
    problems = []
    if before.total is not None and after.total is not None and after.total < before.total:
        problems.append(f"total coverage fell from {before.total:.2%} to {after.total:.2%}")
    if after.changed is not None:
        # The replaced lines' coverage is the bar; pure insertions are held to the file total.
        bar = before.changed if before.changed is not None else before.total
        if bar is not None and after.changed < bar:
            problems.append(
                f"changed lines {after.changed:.0%} covered "
                f"({after.changed_covered}/{after.changed_statements}), below {bar:.0%} before"
            )
    if problems:
        return CheckResult("coverage", False, "; ".join(problems))
    total = "n/a" if after.total is None else f"{after.total:.2%}"
    return CheckResult("coverage", True, f"total {total}, not lower than before")


def check_performance(
    current_ns: Sequence[int], baseline_ns: Sequence[int], ratio: float, floor_ns: float
) -> CheckResult:
    """The regressed test is back within threshold: median ratio under `ratio` or growth under
    `floor_ns` (the same screen as detection; the burden of proof is on the patch)."""
    if not current_ns:
        return CheckResult("performance", False, "no timing sample of the regressed test")
    if not baseline_ns:
        return CheckResult("performance", False, "no baseline timing to compare with")
    r = stats.median_ratio(current_ns, baseline_ns)
    cur_ms, base_ms = stats.median(current_ns) / 1e6, stats.median(baseline_ns) / 1e6
    detail = f"median {cur_ms:.1f} ms vs baseline {base_ms:.1f} ms ({r:.2f}x)"
    if stats.is_suspect(current_ns, baseline_ns, ratio, floor_ns):
        return CheckResult("performance", False, f"still slow: {detail}, threshold {ratio:.2f}x")
    return CheckResult("performance", True, detail)


def check_syntax(files: Mapping[str, str | None]) -> CheckResult:
    """Every touched file still parses: Python, JSON and TOML by their own parsers."""
    problems = [p for name, text in sorted(files.items()) if (p := syntax_problem(name, text))]
    if problems:
        return CheckResult("syntax", False, "; ".join(problems[:5]))
    return CheckResult("syntax", True, f"{len(files)} file(s) parse")


def syntax_problem(name: str, text: str | None) -> str:
    if text is None:
        return ""  # deleted
    try:
        if name.endswith((".py", ".pyi")):
            compile(text, name, "exec", dont_inherit=True)
        elif name.endswith(".json"):
            json.loads(text)
        elif name.endswith(".toml"):
            tomllib.loads(text)
    except SyntaxError as exc:
        return f"{name}:{exc.lineno}: {exc.msg}"
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        return f"{name}: {exc}"
    return ""


def removed_definitions(patch: CheckedPatch) -> dict[str, set[str]]:
    """Names whose `def`/`class` line the patch removes and does not add back, per base file."""
    from unidiff.patch import PatchSet

    result: dict[str, set[str]] = {}
    for pfile in PatchSet(patch.diff):
        removed: set[str] = set()
        added: set[str] = set()
        for hunk in pfile:
            for line in hunk:
                match = _DEF.match(line.value)
                if match and line.is_removed:
                    removed.add(match.group(1))
                elif match and line.is_added:
                    added.add(match.group(1))
        if removed - added:
            result[pfile.path] = removed - added
    return result


def defined_names(text: str) -> set[str]:
    """Top-level and nested function/class names a module defines (for doc references)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def check_doc_references(
    gone: Mapping[str, Collection[str]], references: Mapping[str, Collection[str]]
) -> CheckResult:
    """`gone`: names removed by the patch per module; `references`: doc file → names its code
    blocks mention. A documented name that no longer exists is a broken reference."""
    vanished = {n for names in gone.values() for n in names}
    broken = sorted(
        f"{doc} mentions {name}"
        for doc, names in references.items()
        for name in names
        if name in vanished
    )
    if broken:
        text = "removed names still documented: " + "; ".join(broken[:5])
        return CheckResult("documentation", False, text)
    return CheckResult("documentation", True, "doc references hold")


def summarise_tests(runs: Iterable[RunOutcome]) -> tuple[int, int, int]:
    """Passed, failed and skipped across runs, each test counted once (its worst outcome)."""
    worst: dict[str, str] = {}
    rank = {"passed": 0, "xfailed": 0, "skipped": 1, "failed": 2, "error": 2, "xpassed": 2}
    for run in runs:
        for t in run.result.tests if run.result else ():
            if rank.get(t.outcome, 2) >= rank.get(worst.get(t.nodeid, "passed"), 0):
                worst[t.nodeid] = t.outcome
    values = list(worst.values())
    passed = sum(1 for v in values if rank.get(v, 2) == 0)
    skipped = sum(1 for v in values if v == "skipped")
    return passed, len(values) - passed - skipped, skipped
