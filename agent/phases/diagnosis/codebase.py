"""Collect what diagnosis needs from the repository: coverage, history, bisect and profiles.

Everything here runs in a scratch git worktree under `.selfheal/worktrees/`, never in the
developer's checkout. Each step is bounded by the deadline it is given.
"""

from __future__ import annotations

import ast
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent import git
from agent.errors import GitError
from agent.phases.diagnosis.bisect import BisectResult, Verdict, first_bad, majority
from agent.phases.diagnosis.profile import Profile, read_profile
from agent.phases.diagnosis.pytest_exec import PytestRun, TestResult, run_pytest
from agent.phases.diagnosis.source import Function, functions_in, is_test_file
from agent.records import Anomaly, AnomalyKind
from agent.store import Store

Line = tuple[str, int]


@dataclass(frozen=True)
class CodebaseInfo:
    root: str
    head: str
    baseline: str = ""
    commits: tuple[str, ...] = ()  # baseline..HEAD, oldest first (first-parent line)
    tests: dict[str, TestResult] = field(default_factory=dict)  # outcomes at HEAD
    coverage: dict[str, frozenset[Line]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # covered project files at HEAD
    functions: dict[str, tuple[Function, ...]] = field(default_factory=dict)
    bisect: BisectResult | None = None
    culprit_diff: str = ""  # `git show` of the culprit commit
    profile_base: Profile = field(default_factory=dict)
    profile_current: Profile = field(default_factory=dict)
    durations_base_ns: tuple[int, ...] = ()
    durations_current_ns: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()  # why a step was skipped or cut short


@contextlib.contextmanager
def scratch_worktree(repo: Path, commit: str, tag: str) -> Iterator[Path]:
    """A detached worktree of `commit` (the validation gate's kind), removed afterwards."""
    from agent.phases.validation.workspace import Worktree

    with Worktree(repo, commit, tag) as wt:
        yield wt.path


def checkout(worktree: Path, commit: str) -> None:
    git.run_git(worktree, "checkout", "--detach", "--force", "-q", commit)
    git.run_git(worktree, "clean", "-fdq")


def related_test_files(worktree: Path, failing: Sequence[str]) -> list[str]:
    """The failing tests' files, and other test files importing the modules they import."""
    own = sorted({t.split("::", 1)[0] for t in failing})
    modules: set[str] = set()
    for rel in own:
        modules |= _imported_modules(worktree / rel)
    tracked = git.run_git(worktree, "ls-files", "*.py").split()
    related = [
        rel
        for rel in tracked
        if rel not in own
        and is_test_file(rel)
        and Path(rel).name.startswith("test")
        and modules & _imported_modules(worktree / rel)
    ]
    return own + sorted(related)


def _imported_modules(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - {"pytest", "unittest", "os", "sys", "math", "re", "json", "typing"}


def collect_coverage(
    worktree: Path, failing: Sequence[str], timeout_s: float, sharing: Sequence[str] = ()
) -> PytestRun:
    """Per-test line coverage for the failing tests, the tests that share their modules, and
    `sharing` (tests a stored coverage map shows running the same source files)."""
    files = related_test_files(worktree, failing)
    files += sorted({t.split("::", 1)[0] for t in sharing} - set(files))
    files = [f for f in files if (worktree / f).is_file()]
    return run_pytest(worktree, files or list(failing), timeout_s=timeout_s, coverage=True)


def sharing_tests(store: Store, failing: Sequence[str], limit: int = 500) -> list[str]:
    """Tests that, in the newest stored per-test coverage map (agent.coverage_map), run any
    non-test file a failing test runs; [] when there is no map or it does not know the tests."""
    from agent import coverage_map

    map_id = coverage_map.latest_id(store)
    cmap = coverage_map.load(store, map_id) if map_id else None
    if cmap is None:
        return []
    files = {f for t in failing for f in cmap.lines_of(t) if not is_test_file(f)}
    found = {t for f in sorted(files) for t in cmap.tests_touching(f)}
    return sorted(found - set(failing))[:limit]


def read_sources(worktree: Path, coverage: dict[str, frozenset[Line]]) -> dict[str, str]:
    files = {f for lines in coverage.values() for f, _ in lines}
    texts = {}
    for rel in sorted(files):
        if rel.endswith(".py") and not is_test_file(rel):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                texts[rel] = (worktree / rel).read_text(encoding="utf-8")
    return texts


def index(sources: dict[str, str]) -> dict[str, tuple[Function, ...]]:
    return {rel: tuple(functions_in(rel, text)) for rel, text in sources.items()}


def history(repo: Path, baseline: str, head: str) -> tuple[str, ...]:
    if not baseline or baseline == head:
        return ()
    try:
        return tuple(c.sha for c in git.commits_between(repo, baseline, head))
    except GitError:
        return ()


def failure_check(worktree: Path, tests: Sequence[str], timeout_s: float, repeats: int) -> Verdict:
    """BAD when the tests fail at the checked-out commit (majority of `repeats` runs)."""

    def trial() -> Verdict:
        run = run_pytest(worktree, list(tests), timeout_s=timeout_s)
        if not run.collected or any(t not in run.tests for t in tests):
            return Verdict.SKIP
        return Verdict.GOOD if run.passed(tests) else Verdict.BAD

    return majority(trial, repeats)


def durations(worktree: Path, tests: Sequence[str], runs: int, timeout_s: float) -> list[int]:
    """Wall time of the tests' call phases, one total per run; [] when they do not pass."""
    result = []
    for _ in range(runs):
        run = run_pytest(worktree, list(tests), timeout_s=timeout_s)
        if not run.passed(tests):
            return []
        result.append(sum(run.tests[t].duration_ns for t in tests))
    return result


def slowness_check(
    worktree: Path, tests: Sequence[str], threshold_ns: float, timeout_s: float
) -> Verdict:
    """BAD when the median of three timings is above the threshold."""
    times = durations(worktree, tests, 3, timeout_s)
    if not times:
        return Verdict.SKIP
    return Verdict.BAD if statistics.median(times) > threshold_ns else Verdict.GOOD


def run_bisect(
    repo: Path,
    worktree: Path,
    anomaly: Anomaly,
    commits: Sequence[str],
    deadline: float,
    *,
    threshold_ns: float = 0.0,
) -> BisectResult:
    """Drive a bisect with the anomaly's tests; the last commit is HEAD and known bad."""
    tests = list(anomaly.tests)
    if len(commits) == 1:
        return BisectResult(commits[0], (), "the only commit since the baseline")
    per_run = max(5.0, min(60.0, deadline - time.monotonic()))

    def check(sha: str) -> Verdict:
        try:
            checkout(worktree, sha)
        except GitError:
            return Verdict.SKIP
        if anomaly.kind is AnomalyKind.PERFORMANCE and threshold_ns > 0:
            return slowness_check(worktree, tests, threshold_ns, per_run)
        return failure_check(worktree, tests, per_run, repeats=3)

    return first_bad(commits, check, deadline)


def profile_tests(worktree: Path, tests: Sequence[str], timeout_s: float) -> Profile:
    """cProfile of one run of the tests; project functions only."""
    with tempfile.TemporaryDirectory(prefix="selfheal-prof-") as tmp:
        out = Path(tmp) / "run.prof"
        run_pytest(
            worktree, list(tests), timeout_s=timeout_s, python=("-m", "cProfile", "-o", str(out))
        )
        if not out.is_file():
            return {}
        return read_profile(out, worktree)


def show_commit(repo: Path, sha: str) -> str:
    try:
        return git.run_git(repo, "show", "--no-color", "--format=%H%n%s%n", sha)
    except GitError:
        return ""
