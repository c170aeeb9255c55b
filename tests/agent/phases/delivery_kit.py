"""Shared pieces for delivery and learning tests: a real project, a real patch, a fake API."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agent import git as agit
from agent.conductor import Conductor
from agent.config import Config, build_config
from agent.handlers import HandlerSet, Registry
from agent.records import (
    Anomaly,
    AnomalyKind,
    CodeLocation,
    Diagnosis,
    FixType,
    Patch,
    RootCause,
    Severity,
    ValidationResult,
)
from conftest import commit_files, git

BUGGY = (
    "def total(xs):\n    return sum(xs) + 1\n\n\ndef mean(xs):\n    return total(xs) / len(xs)\n"
)
FIXED = BUGGY.replace("sum(xs) + 1", "sum(xs)")
TESTS = (
    "from calc import mean, total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n\n\n"
    "def test_mean():\n    assert mean([2, 4]) == 3\n"
)
SEQ_DIR = Path(__file__).resolve().parents[3] / "sequences"


def project(make_repo: Any) -> Path:
    """A repo with a green commit, then a commit that breaks `total`."""
    repo: Path = make_repo({"calc.py": FIXED, "test_calc.py": TESTS}, message="green")
    commit_files(repo, {"calc.py": BUGGY}, "off by one in total")
    return repo


def with_remote(repo: Path) -> Path:
    bare = repo.parent / f"{repo.name}-remote.git"
    git(repo.parent, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    return bare


def make_patch(repo: Path, new_text: str = FIXED, strategy: str = "partial_revert") -> Patch:
    """A real patch: edit calc.py in a worktree and take `git diff`."""
    base = agit.head_commit(repo)
    wt = repo.parent / f"wt-{time.monotonic_ns()}"
    agit.add_worktree(repo, wt, base)
    try:
        (wt / "calc.py").write_text(new_text, encoding="utf-8")
        diff = agit.diff_worktree(wt)
    finally:
        agit.remove_worktree(repo, wt)
        shutil.rmtree(wt, ignore_errors=True)
    pid = f"p{time.monotonic_ns():x}"
    return Patch(
        id=pid,
        anomaly_id="a-total",
        diagnosis_id="d-total",
        strategy=strategy,
        fix_type=FixType.CODE,
        diff=diff,
        base_commit=base,
        created_ns=time.time_ns(),
        files=("calc.py",),
        code_changes=2,
        description="undo the +1 added to total",
    )


def anomaly(confidence: float = 0.95, commit: str = "") -> Anomaly:
    return Anomaly(
        id="a-total",
        kind=AnomalyKind.ERROR,
        subtype="new_failure",
        severity=Severity.HIGH,
        confidence=confidence,
        subject="test_calc.py::test_total",
        description="test_total passed on the baseline and fails now",
        detected_ns=time.time_ns(),
        commit=commit,
        location=CodeLocation("calc.py", "total", 2),
        tests=("test_calc.py::test_total", "test_calc.py::test_mean"),
        evidence={"baseline_passes": 3, "exception": "AssertionError"},
    )


def diagnosis(culprit: str = "") -> Diagnosis:
    return Diagnosis(
        id="d-total",
        anomaly_id="a-total",
        created_ns=time.time_ns(),
        root_causes=(
            RootCause("changed return in total", CodeLocation("calc.py", "total", 2), 0.9),
        ),
        culprit_commit=culprit,
    )


def validated(patch: Patch, passed: bool = True, target: str = "") -> ValidationResult:
    return ValidationResult(
        id=f"v-{patch.id}",
        patch_id=patch.id,
        passed=passed,
        created_ns=time.time_ns(),
        duration_ns=1_500_000_000,
        tests_passed=2 if passed else 1,
        tests_failed=0 if passed else 1,
        target_commit=target or patch.base_commit,
    )


def config(repo: Path, **values: Any) -> Config:
    return build_config(repo, values, source="test")


def conductor(cfg: Config, tmp: Path, *sets: HandlerSet, names: tuple[str, ...] = ()) -> Conductor:
    """A conductor over only the given phases' sequence files (other phases are not needed)."""
    seqdir = tmp / f"seq-{time.monotonic_ns()}"
    seqdir.mkdir()
    for name in names:
        shutil.copy(SEQ_DIR / name, seqdir / name)
    (seqdir / "index.json").write_text(json.dumps({"version": 1, "sequences": list(names)}))
    registry = Registry([h for s in sets for h in s])
    return Conductor(cfg, registry=registry, sequences_dir=seqdir)


def run_pytest(repo: Path) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:selfheal"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )


@dataclass
class FakeAPI:
    """A GitHub-like HTTP server on 127.0.0.1 that records every request it gets."""

    status: int = 201
    reply: dict[str, Any] = field(
        default_factory=lambda: {"number": 42, "html_url": "http://127.0.0.1/acme/app/pull/42"}
    )
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeAPI:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode()
                api.requests.append(
                    {
                        "method": "POST",
                        "path": self.path,
                        "headers": dict(self.headers),
                        "json": json.loads(body or "null"),
                    }
                )
                payload = json.dumps(api.reply).encode()
                self.send_response(api.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-api")
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None and self.thread is not None
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
