"""A faster early reject for many candidates: the anomaly's tests without autoloaded plugins.

pytest spends most of a tiny run loading installed plugins. When the failing tests fail the
same way without them (checked once, on the unpatched base commit), candidates are rejected on
those tests in a plugin-free run; a candidate that passes still goes through the whole gate,
with every plugin, so nothing is validated in the lighter setting.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.errors import PatchError
from agent.phases.diagnosis.codebase import CodebaseInfo
from agent.phases.diagnosis.pytest_exec import run_pytest
from agent.phases.validation.workspace import Worktree


class FastCheck:
    """Reuses one worktree at the base commit, reset before each candidate."""

    def __init__(self, worktree: Worktree, tests: Sequence[str]) -> None:
        self.worktree = worktree
        self.tests = list(tests)

    @classmethod
    def calibrate(
        cls, worktree: Worktree, tests: Sequence[str], info: CodebaseInfo | None, timeout_s: float
    ) -> FastCheck | None:
        """A checker when the tests fail identically without plugins at the base; else None."""
        failing = [t for t in tests if info and t in info.tests and not info.tests[t].ok]
        if info is None or not failing:
            return None
        worktree.reset()
        run = run_pytest(worktree.path, failing, timeout_s=timeout_s, autoload=False)
        for test in failing:
            before, now = info.tests[test], run.tests.get(test)
            if now is None or now.outcome != before.outcome or now.exception != before.exception:
                return None
        return cls(worktree, failing)

    def passes(self, diff: str, timeout_s: float) -> bool:
        """True when the patch applies and every checked test passes."""
        self.worktree.reset()
        try:
            self.worktree.apply(diff)
        except PatchError:
            return False
        run = run_pytest(
            self.worktree.path, [*self.tests, "-x"], timeout_s=timeout_s, autoload=False
        )
        return run.passed(self.tests)
