"""The validation request and the baton its beats pass along."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.patches import CheckedPatch
from agent.phases.validation.background import BaselineJob
from agent.phases.validation.checks import CoverageFigures, MapLines
from agent.phases.validation.selection import Selection
from agent.phases.validation.workspace import Worktree
from agent.records import Anomaly, AnomalyKind, CheckResult, Patch, ValidationResult
from agent.runner import RunOutcome

SELECTIONS = ("affected", "full")


@dataclass(frozen=True)
class ValidationRequest:
    """One candidate patch to prove. `anomaly.tests` (and `tests`) are run first, `repeats`
    times in a row; `baseline_timing_ns` is the regressed test's baseline sample."""

    patch: Patch
    anomaly: Anomaly | None = None
    selection: str = "affected"  # affected | full
    repeats: int = 3
    timeout_s: float = 300.0
    baseline_timing_ns: tuple[int, ...] = ()
    perf_ratio: float | None = None  # threshold; default from config
    tests: tuple[str, ...] = ()  # more tests to treat as the anomaly's own
    coverage: bool = True  # compare coverage with the base commit
    worktree: Worktree | None = None  # a caller's reusable worktree at the base commit

    @property
    def anomaly_tests(self) -> tuple[str, ...]:
        own = self.anomaly.tests if self.anomaly is not None else ()
        return tuple(dict.fromkeys((*own, *self.tests)))

    @property
    def is_performance(self) -> bool:
        if self.baseline_timing_ns:
            return True
        return self.anomaly is not None and self.anomaly.kind is AnomalyKind.PERFORMANCE


@dataclass(frozen=True)
class StageRun:
    """One sandboxed pytest run of the validation and what it was for."""

    stage: str  # anomaly | affected | full | doctest | coverage-baseline | timing-baseline
    args: tuple[str, ...]
    outcome: RunOutcome


@dataclass
class Cleanup:
    """Worktrees made during one validation; `validate` closes them whatever happens."""

    worktrees: list[Worktree] = field(default_factory=list)
    jobs: list[BaselineJob] = field(default_factory=list)

    def close(self) -> None:
        while self.jobs:
            self.jobs.pop().stop()
        while self.worktrees:
            self.worktrees.pop().close()


@dataclass(frozen=True)
class ValidationBaton:
    request: ValidationRequest
    cleanup: Cleanup = field(default_factory=Cleanup)
    started_ns: int = 0
    deadline: float = 0.0  # time.monotonic() by which every run must be over (0: none yet)
    base_commit: str = ""
    checked: CheckedPatch | None = None
    worktree: Worktree | None = None
    selection: Selection | None = None
    baseline_job: BaselineJob | None = None
    known_tests: int = 0  # how many tests the wide run holds, when known
    map_lines: MapLines | None = None  # the base commit's coverage from the stored map
    runs: tuple[StageRun, ...] = ()
    checks: tuple[CheckResult, ...] = ()
    stopped: str = ""  # the check that failed early; later beats do no more work
    files_after: Mapping[str, str | None] = field(default_factory=dict)
    removed_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    doc_references: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    coverage_before: CoverageFigures | None = None
    coverage_after: CoverageFigures | None = None
    timing_before: tuple[int, ...] = ()
    timing_after: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()
    result: ValidationResult | None = None

    def with_check(self, check: CheckResult, *, stop: bool = False) -> ValidationBaton:
        stopped = self.stopped or (check.name if stop and not check.passed else "")
        return dataclasses.replace(self, checks=(*self.checks, check), stopped=stopped)

    def with_run(self, run: StageRun) -> ValidationBaton:
        notes = tuple(dict.fromkeys((*self.notes, *run.outcome.notes)))
        return dataclasses.replace(self, runs=(*self.runs, run), notes=notes)

    def run_of(self, stage: str) -> StageRun | None:
        found = [r for r in self.runs if r.stage == stage]
        return found[-1] if found else None
