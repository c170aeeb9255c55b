"""Confirming re-runs in a fresh pytest process: timing samples and outcomes of suspects."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.phases.anomaly.model import RerunSpec

PLUGIN = "agent.phases.anomaly.repeat_plugin"
PLAN_ENV = "SELFHEAL_REPEAT_PLAN"


@dataclass(frozen=True)
class RerunResult:
    runs: tuple[tuple[str, str, int], ...]  # (nodeid, outcome, call_ns) in execution order
    error: str = ""

    def durations(self, nodeid: str, passed_only: bool = True) -> tuple[int, ...]:
        return tuple(
            d for n, o, d in self.runs if n == nodeid and (o == "passed" or not passed_only)
        )

    def outcomes(self, nodeid: str) -> tuple[str, ...]:
        return tuple(o for n, o, _ in self.runs if n == nodeid)


def rerun(spec: RerunSpec, nodeids: Sequence[str], counts: Mapping[str, int]) -> RerunResult:
    """Run `nodeids` in order, each `counts[nodeid]` times (default once), in a new process."""
    if not nodeids:
        return RerunResult(())
    with tempfile.TemporaryDirectory(prefix="selfheal-rerun-") as tmp:
        out = Path(tmp) / "results.json"
        plan = Path(tmp) / "plan.json"
        plan.write_text(json.dumps({"counts": dict(counts), "out": str(out)}), encoding="utf-8")
        env = {**os.environ, **spec.env, PLAN_ENV: str(plan)}
        env.pop("PYTEST_XDIST_WORKER", None)
        env.pop("PYTEST_CURRENT_TEST", None)
        argv = [*spec.argv, "-p", PLUGIN, *nodeids]
        error = _run(argv, spec.cwd, env, spec.timeout_s)
        if not out.is_file():
            return RerunResult((), error or "the re-run wrote no results")
        data = json.loads(out.read_text(encoding="utf-8"))
    runs = tuple((str(r["nodeid"]), str(r["outcome"]), int(r["call_ns"])) for r in data)
    return RerunResult(runs, error if not runs else "")


def _run(argv: list[str], cwd: Path, env: Mapping[str, str], timeout: float) -> str:
    """Run and reap; the whole process group dies at the timeout. Returns an error line or ''."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"re-run timed out after {timeout:.0f}s"
    # 0 all passed, 1 some failed: both are results. Anything else is a broken run.
    if proc.returncode not in (0, 1):
        tail = (output or "").strip().splitlines()[-1:] or [""]
        return f"re-run exited {proc.returncode}: {tail[0][:200]}"
    return ""
