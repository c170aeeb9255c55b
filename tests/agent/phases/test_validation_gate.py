"""The validation gate end to end: real repositories, real worktrees, real pytest runs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent import coverage_map
from agent.conductor import Conductor
from agent.config import load_config
from agent.phases.validation import (
    ValidationRequest,
    Worktree,
    quick_reject,
    validate,
    validate_baton,
)
from agent.phases.validation.workspace import prune_stale, worktrees_dir
from agent.records import Anomaly, AnomalyKind, FixType, Patch, Severity, ValidationResult
from agent.store import Store
from conftest import commit_files, git
from tests.agent.test_patches import HOSTILE

OPS = '''\
"""Arithmetic."""


def add(a, b):
    return a - b


def mul(a, b):
    return a * b
'''
TESTS = """\
from calc.ops import add, mul


def test_add():
    assert add(2, 3) == 5


def test_mul():
    assert mul(2, 3) == 6
"""
README = "# calc\n\n```python\nfrom calc.ops import add, mul\n```\n"
ADD = "tests/test_ops.py::test_add"


@pytest.fixture
def project(make_repo: Callable[..., Path]) -> Path:
    return make_repo(
        {
            "calc/__init__.py": "",
            "calc/ops.py": OPS,
            "tests/test_ops.py": TESTS,
            "README.md": README,
            "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
        }
    )


@pytest.fixture
def conductor(project: Path) -> Iterator[Conductor]:
    with Conductor(load_config(project)) as c:
        yield c


def make_diff(repo: Path, edits: dict[str, str]) -> str:
    """A real `git diff` of edits made in a scratch copy (the repo itself stays clean)."""
    with Worktree(repo, "HEAD", "make-diff") as wt:
        for rel, text in edits.items():
            (wt.path / rel).parent.mkdir(parents=True, exist_ok=True)
            (wt.path / rel).write_text(text, encoding="utf-8")
        git(wt.path, "add", "-A")
        return git(wt.path, "diff", "--cached", "--no-color")


def patch_of(diff: str, pid: str = "p1") -> Patch:
    return Patch(pid, "a1", "d1", "manual", FixType.CODE, diff, "", 0)


def failing(test: str = ADD, **kw: object) -> Anomaly:
    return Anomaly(
        "a1",
        AnomalyKind.ERROR,
        "new_failure",
        Severity.HIGH,
        1.0,
        test,
        "fails",
        0,
        tests=(test,),
        **kw,  # type: ignore[arg-type]
    )


def check(result: ValidationResult, name: str) -> str:
    found = [c for c in result.checks if c.name == name]
    assert found, f"no {name} check in {result.checks}"
    return "" if found[0].passed else found[0].reason


@pytest.mark.slow
def test_fix_that_breaks_another_test_fails_naming_it(project: Path, conductor: Conductor) -> None:
    broken = OPS.replace("a - b", "a + b").replace("a * b", "a ** b")
    diff = make_diff(project, {"calc/ops.py": broken})
    result = validate(conductor, ValidationRequest(patch_of(diff), failing(), coverage=False))
    assert not result.passed
    assert check(result, "anomaly-tests") == ""
    assert "tests/test_ops.py::test_mul" in check(result, "tests")


@pytest.mark.slow
def test_fix_that_drops_coverage_fails(project: Path, conductor: Conductor) -> None:
    # Fixes add() but adds a branch no test runs: changed-line coverage falls.
    dropped = OPS.replace(
        "    return a - b",
        "    if isinstance(a, str):\n        raise TypeError(a)\n    return a + b",
    )
    diff = make_diff(project, {"calc/ops.py": dropped})
    result = validate(conductor, ValidationRequest(patch_of(diff), failing()))
    assert check(result, "tests") == ""
    reason = check(result, "coverage")
    assert "coverage fell" in reason or "changed lines" in reason
    assert not result.passed


def test_hanging_tests_are_killed_at_the_timeout(project: Path, conductor: Conductor) -> None:
    hang = OPS.replace("    return a - b", "    import time\n    time.sleep(600)\n    return a + b")
    diff = make_diff(project, {"calc/ops.py": hang})
    request = ValidationRequest(patch_of(diff), failing(), timeout_s=4)
    baton = validate_baton(conductor, request)
    assert baton.result is not None and not baton.result.passed
    assert "timed out" in check(baton.result, "anomaly-tests")
    assert baton.runs[0].outcome.duration_s < 15
    assert not any(worktrees_dir(project).iterdir())


def test_broken_syntax_is_caught_before_any_test_runs(project: Path, conductor: Conductor) -> None:
    diff = make_diff(project, {"calc/ops.py": OPS.replace("a - b", "a +")})
    baton = validate_baton(conductor, ValidationRequest(patch_of(diff), failing()))
    assert baton.result is not None and "calc/ops.py:5" in check(baton.result, "syntax")
    assert baton.runs == ()


@pytest.mark.slow
def test_removing_a_documented_name_fails_the_documentation_check(
    project: Path, conductor: Conductor
) -> None:
    ops = OPS.replace("a - b", "a + b").replace("\n\ndef mul(a, b):\n    return a * b\n", "")
    tests = TESTS.replace(", mul", "").split("\n\n\ndef test_mul")[0] + "\n"
    diff = make_diff(project, {"calc/ops.py": ops, "tests/test_ops.py": tests})
    result = validate(conductor, ValidationRequest(patch_of(diff), failing(), coverage=False))
    assert "README.md mentions mul" in check(result, "documentation")
    assert not result.documentation_valid


@pytest.mark.slow
def test_broken_doctest_fails(project: Path, conductor: Conductor) -> None:
    fixed = OPS.replace("a - b", "a + b").replace(
        '"""Arithmetic."""', '"""Arithmetic.\n\n>>> add(2, 2)\n5\n"""'
    )
    diff = make_diff(project, {"calc/ops.py": fixed})
    result = validate(conductor, ValidationRequest(patch_of(diff), failing(), coverage=False))
    assert "calc/ops.py::calc.ops" in check(result, "doctests")


def _snapshot(repo: Path) -> dict[str, object]:
    files = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if rel.startswith((".git/", ".selfheal")) or not path.is_file():
            continue
        files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "files": files,
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "stash": git(repo, "stash", "list"),
        "branches": git(repo, "branch", "-a", "-v", "--no-abbrev"),
        "head": git(repo, "rev-parse", "HEAD", "--symbolic-full-name", "HEAD"),
        "index": hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest(),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
    }


@pytest.mark.slow
def test_correct_patch_passes_and_the_dirty_tree_index_stash_branches_stay_untouched(
    project: Path, conductor: Conductor
) -> None:
    diff = make_diff(project, {"calc/ops.py": OPS.replace("a - b", "a + b")})
    git(project, "branch", "feature")
    (project / "calc/ops.py").write_text(OPS + "\n# stashed\n", encoding="utf-8")
    git(project, "stash")
    (project / "calc/ops.py").write_text(OPS + "\n# work in progress\n", encoding="utf-8")
    (project / "README.md").write_text(README + "staged\n", encoding="utf-8")
    git(project, "add", "README.md")
    (project / "notes.txt").write_text("untracked\n", encoding="utf-8")
    before = _snapshot(project)
    baton = validate_baton(conductor, ValidationRequest(patch_of(diff), failing()))
    refused = validate(conductor, ValidationRequest(patch_of(HOSTILE[0][1], "p2"), failing()))
    assert _snapshot(project) == before
    result = baton.result
    assert result is not None and result.passed, result and result.reasons
    assert not refused.passed
    assert {c.name for c in result.checks} == {
        "patch-safety",
        "apply",
        "syntax",
        "anomaly-tests",
        "tests",
        "coverage",
        "documentation",
    }
    assert result.tests_failed == 0 and result.tests_passed == 2
    assert result.coverage_after == 1.0 and result.changed_lines_coverage == 1.0
    # No coverage map is known: the wide run is the whole suite, never nothing.
    assert baton.selection is not None and baton.selection.full
    assert [r.stage for r in baton.runs] == ["anomaly", "full", "coverage-baseline"]
    with Store.open(conductor.config.store) as store:
        assert store.get(result.id, ValidationResult) == result


def test_hostile_patches_are_refused_with_nothing_written(
    project: Path, conductor: Conductor
) -> None:
    before = _snapshot(project)
    for name, diff, _ in HOSTILE:
        result = validate(conductor, ValidationRequest(patch_of(diff, f"h-{name}"), failing()))
        assert not result.passed, name
        assert result.checks[0].name == "patch-safety" and not result.checks[0].passed, name
        assert len(result.checks) == 1, name
    assert _snapshot(project) == before
    assert not worktrees_dir(project).exists()
    assert not (project.parent / "outside.py").exists()


@pytest.mark.slow
def test_partial_fix_of_a_slowdown_fails_the_timing_check(
    make_repo: Callable[..., Path],
) -> None:
    slow = "import time\n\n\ndef work():\n    time.sleep({})\n    return 1\n"
    test = "from app import work\n\n\ndef test_work():\n    assert work() == 1\n"
    repo = make_repo({"app.py": slow.format(0.01), "tests/test_app.py": test})
    fast = git(repo, "rev-parse", "HEAD").strip()
    commit_files(repo, {"app.py": slow.format(0.3)}, "regress")
    anomaly = Anomaly(
        "a2",
        AnomalyKind.PERFORMANCE,
        "slowdown",
        Severity.HIGH,
        0.99,
        "tests/test_app.py::test_work",
        "slower",
        0,
        baseline_commit=fast,
        tests=("tests/test_app.py::test_work",),
    )
    with Conductor(load_config(repo, {"perf_reruns": 3})) as c:
        partial = make_diff(repo, {"app.py": slow.format(0.15)})
        result = validate(c, ValidationRequest(patch_of(partial), anomaly, coverage=False))
        assert "still slow" in check(result, "performance")
        assert result.performance_before_ns is not None and result.performance_before_ns < 0.1e9
        full = make_diff(repo, {"app.py": slow.format(0.01)})
        request = ValidationRequest(
            patch_of(full, "p-full"), anomaly, coverage=False, baseline_timing_ns=(10_000_000,) * 5
        )
        result = validate(c, request)
        assert result.passed, result.reasons


@pytest.mark.slow
def test_affected_selection_uses_the_coverage_map(project: Path, conductor: Conductor) -> None:
    head = git(project, "rev-parse", "HEAD").strip()
    with Store.open(conductor.config.store) as store:
        coverage_map.save(
            store,
            {ADD: {"calc/ops.py": [5]}, "tests/test_ops.py::test_mul": {"calc/ops.py": [9]}},
            {"calc/ops.py": [1, 4, 5, 8, 9]},
            head,
            dirty=False,
        )
    diff = make_diff(project, {"calc/ops.py": OPS.replace("a - b", "a + b")})
    baton = validate_baton(conductor, ValidationRequest(patch_of(diff), failing(), coverage=False))
    assert baton.selection is not None and not baton.selection.full
    assert baton.selection.tests == (ADD,)
    assert baton.result is not None and baton.result.passed, baton.result.reasons


def test_stale_worktrees_of_dead_processes_are_pruned(project: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = worktrees_dir(project) / f"crashed-{dead.pid}"
    git(project, "worktree", "add", "--detach", str(stale), "HEAD")
    alive = Worktree(project, "HEAD", "alive").open()
    try:
        removed = prune_stale(project)
        assert removed == [stale]
        assert not stale.exists() and alive.path.exists()
        assert str(stale) not in git(project, "worktree", "list")
    finally:
        alive.close()
    assert str(alive.path) not in git(project, "worktree", "list")


@pytest.mark.slow
def test_quick_reject_reuses_one_worktree_across_candidates(project: Path) -> None:
    config = load_config(project)
    good = make_diff(project, {"calc/ops.py": OPS.replace("a - b", "a + b")})
    bad = make_diff(project, {"calc/ops.py": OPS.replace("a - b", "a * b")})
    with Worktree(project, "HEAD", "mutants") as wt:
        verdicts = [quick_reject(config, d, [ADD], worktree=wt) for d in (bad, good, bad, "junk")]
    assert [v.passed for v in verdicts] == [False, True, False, False]
    assert "1 failing" in verdicts[0].reason or "not" in verdicts[0].reason
    assert verdicts[3].check.name == "patch-safety"
    assert not any(worktrees_dir(project).iterdir())


def test_bad_request_is_a_clear_error(conductor: Conductor) -> None:
    from agent.errors import BeatError

    with pytest.raises(BeatError, match="selection 'some'"):
        validate(conductor, ValidationRequest(patch_of("x"), selection="some"))


@pytest.mark.slow
def test_environment_of_the_test_run_is_scrubbed(
    project: Path, conductor: Conductor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("PYTEST_ADDOPTS", "--collect-only")
    probe = textwrap.dedent(
        """
        import os

        def test_env():
            assert "GITHUB_TOKEN" not in os.environ
            assert os.environ["HOME"] != os.path.expanduser("~root")
            assert os.environ["SELFHEAL_VALIDATING"] == "1"
        """
    )
    diff = make_diff(
        project, {"calc/ops.py": OPS.replace("a - b", "a + b"), "tests/test_env.py": probe}
    )
    result = validate(
        conductor,
        ValidationRequest(
            patch_of(diff), failing(), tests=("tests/test_env.py::test_env",), coverage=False
        ),
    )
    assert result.passed, result.reasons
    assert os.environ["GITHUB_TOKEN"] == "ghp_secret"


@pytest.mark.slow
def test_affected_coverage_baseline_comes_from_the_recorded_map(
    project: Path, conductor: Conductor
) -> None:
    # The product's own path records the map: `pytest --selfheal --selfheal-coverage=always`.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--selfheal",
            "--selfheal-coverage=always",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "selfheal" in proc.stdout, proc.stdout + proc.stderr
    good = make_diff(project, {"calc/ops.py": OPS.replace("a - b", "a + b")})
    baton = validate_baton(conductor, ValidationRequest(patch_of(good), failing()))
    assert baton.result is not None and baton.result.passed, baton.result.reasons
    assert [r.stage for r in baton.runs] == ["affected"]  # no baseline run: the map had it
    assert baton.map_lines is not None
    dropped = OPS.replace(
        "    return a - b",
        "    if isinstance(a, str):\n        raise TypeError(a)\n    return a + b",
    )
    diff = make_diff(project, {"calc/ops.py": dropped})
    result = validate(conductor, ValidationRequest(patch_of(diff, "p-drop"), failing()))
    assert "changed lines 67% covered (2/3), below 100% before" in check(result, "coverage")
    # A decorator and an import run at import time, never inside a test: the gate measures
    # the base commit's full coverage for such a patch instead of refusing it on the map.
    cached = OPS.replace('"""Arithmetic."""\n', '"""Arithmetic."""\n\nimport functools\n')
    cached = cached.replace("def add", "@functools.lru_cache\ndef add").replace("a - b", "a + b")
    diff = make_diff(project, {"calc/ops.py": cached})
    baton = validate_baton(conductor, ValidationRequest(patch_of(diff, "p-cache"), failing()))
    assert baton.result is not None and baton.result.passed, baton.result.reasons
    assert [r.stage for r in baton.runs] == ["affected", "coverage-baseline"]
    assert baton.result.changed_lines_coverage == 1.0
