"""The base commit's coverage, measured on a thread while the candidate's tests run."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from agent.phases.validation.workspace import Worktree
from agent.runner import RunOutcome, Sandbox, run_pytest


class BaselineJob:
    """One coverage run of the unpatched base commit in its own scratch worktree."""

    def __init__(
        self,
        root: Path,
        commit: str,
        args: Sequence[str],
        *,
        patch_id: str,
        sandbox: Sandbox,
        workers: int,
    ) -> None:
        self.args = tuple(args)
        self.outcome: RunOutcome | None = None
        self.error = ""
        self._cancel = threading.Event()
        self._worktree = Worktree(root, commit, "baseline")
        self._options = (patch_id, sandbox, workers)
        self._thread = threading.Thread(target=self._run, name="selfheal-coverage-baseline")

    def start(self) -> BaselineJob:
        self._thread.start()
        return self

    def _run(self) -> None:
        patch_id, sandbox, workers = self._options
        try:
            with self._worktree as wt:
                self.outcome = run_pytest(
                    wt.path,
                    list(self.args),
                    patch_id=f"{patch_id}-baseline",
                    sandbox=sandbox,
                    coverage=True,
                    workers=workers,
                    cancel=self._cancel,
                )
        except Exception as exc:  # reported as the coverage check's reason, never lost
            self.error = f"{type(exc).__name__}: {exc}"

    def wait(self) -> RunOutcome | None:
        self._thread.join()
        return self.outcome

    def stop(self) -> None:
        """Cancel a run nobody needs any more (the candidate was rejected) and reap it."""
        self._cancel.set()
        if self._thread.is_alive():
            self._thread.join()
