"""Which tests validate a patch: the anomaly's own, those covering the changed lines, or all."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.coverage_map import CoverageMap
from agent.patches import CheckedPatch, FileChange
from agent.phases.validation.checks import TEST_FILE

# Measured by bench/validation.py (2 shared cores): 2,000 quick tests took 8.8 s serial and
# 16.9 s with `-n 2` (each worker re-imports pytest and its plugins), 980 tests 5.6 s vs 10.1 s.
# xdist pays only for larger or slower sets; below this many tests it is not used.
XDIST_MIN_TESTS = 3000
# Up to this many affected tests are repeated whole in one run behind the anomaly's tests.
COMBINED_MAX_TESTS = 200


@dataclass(frozen=True)
class Selection:
    """The test arguments of the wide run; `full` means the project's whole suite."""

    tests: tuple[str, ...]  # node ids or test files; empty when full
    full: bool
    reason: str

    @property
    def args(self) -> list[str]:
        return [] if self.full else list(self.tests)


def select(
    patch: CheckedPatch,
    anomaly_tests: Sequence[str],
    cmap: CoverageMap | None,
    policy: str,
    stale_files: Collection[str] = (),
) -> Selection:
    """`full` → the whole suite. `affected` → the anomaly's tests plus the tests whose recorded
    coverage touches the changed lines; whenever that cannot be known, the whole suite."""
    if policy == "full":
        return Selection((), True, "policy: full suite")
    if cmap is None:
        return Selection((), True, "no coverage map known: full suite")
    chosen: set[str] = set(anomaly_tests)
    for change in patch.files:
        found = tests_for_change(change, cmap, stale_files)
        if found is None:
            return Selection((), True, f"{change.path or change.source_path}: cannot map to tests")
        chosen |= found
    if not chosen:
        return Selection((), True, "no test covers the changed lines: full suite")
    return Selection(tuple(sorted(_drop_nested(chosen))), False, f"{len(chosen)} affected")


def tests_for_change(
    change: FileChange, cmap: CoverageMap, stale_files: Collection[str] = ()
) -> set[str] | None:
    """Tests that ran the base lines a file change touches; None when it cannot be mapped."""
    name = change.source_path or change.path
    if name.endswith("conftest.py") or not name.endswith(".py"):
        return None  # fixtures, data and configuration reach tests we cannot see
    if TEST_FILE.search(name):
        return {change.path} if change.path else set()  # a changed test file runs whole
    if not change.source_path or name in stale_files:
        return None
    statements = cmap.statements.get(name)
    if statements is None:
        return None
    everyone = set(cmap.tests_touching(name))
    tests: set[str] = set()
    for line in sorted(set(change.removed) & statements):
        touching = cmap.tests_touching(name, [line])
        if not touching:
            # Import-time lines (def, decorators, module constants) carry no test context:
            # every test that runs anything in this file may see the change.
            return everyone
        tests.update(touching)
    # Inserted code runs when a neighbouring statement runs; if neither neighbour was run
    # by a test (both import-time or blank), fall back to every test of the file.
    around = {
        t
        for line in change.anchors
        if line in statements
        for t in cmap.tests_touching(name, [line])
    }
    if change.anchors and not around:
        return everyone
    return tests | around


def _drop_nested(ids: set[str]) -> set[str]:
    """A whole test file already selected makes its own node ids redundant."""
    files = {i for i in ids if "::" not in i}
    return {i for i in ids if "::" not in i or i.split("::", 1)[0] not in files}


def workers_for(count: int, cpus: int | None = None) -> int:
    """xdist workers for a run of `count` tests (0: run in one process)."""
    import os

    cpus = cpus or os.cpu_count() or 1
    if cpus < 2 or count < XDIST_MIN_TESTS:
        return 0
    return min(cpus, 4)


def xdist_available() -> bool:
    try:
        import xdist  # noqa: F401
    except ImportError:
        return False
    return True


def args_file(directory: Path, args: Sequence[str]) -> list[str]:
    """Long node-id lists go through pytest's @file argument instead of the command line."""
    if len(args) < 200:
        return list(args)
    path = directory / "selected-tests.txt"
    path.write_text("\n".join(args) + "\n", encoding="utf-8")
    return [f"@{path}"]
