"""One seeded bug, and the script that builds it into its own small git repository."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_ENV = {
    "GIT_AUTHOR_NAME": "Bench Author",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench Author",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


@dataclass(frozen=True)
class Bug:
    """A program in a good and a bad version, its visible tests and held-out tests.

    With `history` the repository gets the good commit and then the regressing one (plus
    `noise` unrelated commits around it, so the culprit must be found by bisection); without,
    only the bad program and its tests are committed. Held-out tests are never committed:
    the benchmark adds them only to judge a patch.
    """

    name: str
    category: str
    module: str
    good: str
    bad: str
    tests: str
    heldout: str
    history: bool = False
    perf_test: str = ""  # node id of the test the bug makes slow
    noise: int = 0

    @property
    def test_file(self) -> str:
        return f"tests/test_{Path(self.module).stem}.py"


@dataclass(frozen=True)
class Built:
    repo: Path
    good_commit: str  # "" without history
    head: str
    faulty_lines: tuple[int, ...]  # lines of the bad module a correct fix must touch


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, **_ENV},
        check=True,
    )
    return proc.stdout


def _commit(repo: Path, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def faulty_lines(repo: Path, good: str, bad: str, module: str) -> tuple[int, ...]:
    """Lines of the bad version that differ from the good one; for a pure deletion, the lines
    around the place where code is missing."""
    from unidiff.patch import PatchSet

    lines: set[int] = set()
    for pfile in PatchSet(git(repo, "diff", "-U0", good, bad, "--", module)):
        for hunk in pfile:
            added = [ln.target_line_no for ln in hunk if ln.is_added and ln.target_line_no]
            if added:
                lines.update(added)
            else:
                lines.update({hunk.target_start, hunk.target_start + 1})
    return tuple(sorted(lines))


def build(bug: Bug, dest: Path) -> Built:
    """Make the repository at dest (which must not exist)."""
    dest.mkdir(parents=True)
    git(dest, "init", "-q", "-b", "main")
    base = {"conftest.py": "", "tests/__init__.py": "", bug.test_file: bug.tests}
    good = _commit(dest, {**base, bug.module: bug.good}, "green: program and tests")
    if bug.noise:
        _commit(dest, {"README.md": f"# {bug.name}\n"}, "docs: readme")
    bad = _commit(dest, {bug.module: bug.bad}, f"change {bug.module}")
    for i in range(1, bug.noise):
        _commit(dest, {f"docs/note{i}.md": f"note {i}\n"}, f"docs: note {i}")
    lines = faulty_lines(dest, good, bad, bug.module)
    if bug.history:
        return Built(dest, good, git(dest, "rev-parse", "HEAD").strip(), lines)
    # Without history: one commit holding the bad program.
    git(dest, "checkout", "-q", "--orphan", "only")
    git(dest, "commit", "-q", "-m", "program and tests")
    git(dest, "branch", "-q", "-D", "main")
    git(dest, "branch", "-q", "-m", "main")
    git(dest, "reflog", "expire", "--expire=now", "--all")
    git(dest, "gc", "-q", "--prune=now")
    return Built(dest, "", git(dest, "rev-parse", "HEAD").strip(), lines)
