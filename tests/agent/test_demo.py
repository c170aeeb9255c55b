"""`selfheal demo` end to end, as a new user runs it: a subprocess, offline, in a temp dir."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.records import Deployment, DeploymentStatus, Patch, ValidationResult
from agent.store import Store


@pytest.mark.slow
def test_demo_heals_a_regression_and_proposes_it(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    elapsed = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    for stage in range(1, 7):
        assert f"[{stage}/6]" in out
    project = tmp_path / "demo-shop"
    assert f"the project is kept for you: cd {project}" in out
    assert "-- Anomalies (" in out and "-- Validated patches (" in out
    with Store.open(project / ".selfheal" / "selfheal.db") as store:
        passed = {v.patch_id for v in store.find(ValidationResult) if v.passed}
        patches = [p for p in store.find(Patch) if p.id in passed]
        deployments = store.find(Deployment)
    assert patches, "no validated patch"
    proposed = [d for d in deployments if d.status is DeploymentStatus.PROPOSED and d.branch]
    assert proposed, [d.reason for d in deployments]
    # Both regressions (the broken function and the slowed one) are healed and proposed.
    assert len({p.anomaly_id for p in patches}) >= 2, [p.strategy for p in patches]
    assert len({d.anomaly_id for d in proposed}) >= 2, [d.reason for d in deployments]
    assert elapsed < 120, f"the demo took {elapsed:.0f} s"
    branches = subprocess.run(
        ["git", "branch", "--list", "selfheal/*"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert proposed[0].branch in branches
    assert (project / ".selfheal" / "report.html").is_file()
    assert "-- Learning record (" in out
    print(f"demo took {elapsed:.0f} s")
