"""Builders shared by the fix-strategy tests: a FixWork over in-memory sources."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from agent.phases.diagnosis.pytest_exec import Frame
from agent.phases.fix.base import FixWork
from agent.records import Anomaly, AnomalyKind, CodeLocation, Diagnosis, Severity


def work(
    sources: Mapping[str, str],
    suspicious: tuple[tuple[str, int], ...] = (),
    *,
    exception: str = "",
    frames: tuple[Frame, ...] = (),
    culprit_diff: str = "",
    hot: tuple[CodeLocation, ...] = (),
    kind: AnomalyKind = AnomalyKind.ERROR,
    llm_reply: str = "",
    observations: Mapping[str, str] | None = None,
) -> FixWork:
    anomaly = Anomaly(
        "a1",
        kind,
        "new_failure",
        Severity.HIGH,
        1.0,
        "tests/test_m.py::test_x",
        "it broke",
        time.time_ns(),
        tests=("tests/test_m.py::test_x",),
    )
    diagnosis = Diagnosis("d1", "a1", time.time_ns(), culprit_commit="c0ffee")
    return FixWork(
        anomaly=anomaly,
        diagnosis=diagnosis,
        sources=dict(sources),
        suspicious=suspicious,
        frames=frames,
        exception=exception,
        culprit_diff=culprit_diff,
        hot=hot,
        llm_reply=llm_reply,
        observations=dict(observations or {}),
    )


def run(source: str, name: str, *args: object) -> object:
    """Call function `name` of a module given as text (the candidate's behaviour)."""
    namespace: dict[str, object] = {}
    exec(compile(source, "<candidate>", "exec"), namespace)
    func = namespace[name]
    assert callable(func)
    return func(*args)


def git(repo: Path, *args: str) -> str:
    """Run git in a test repository (the identity comes from the root conftest's fixtures)."""
    env = {**os.environ, **_IDENTITY}
    proc = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def commit_files(repo: Path, files: Mapping[str, str], message: str) -> str:
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
}
