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


def record_run(store: Any, commit: str, outcomes: dict[str, tuple[str, int]]) -> int:
    """A test run as the plugin leaves it: a run row and one test_history row per test."""
    run_id: int = store.begin_run("test", commit=commit, env_key="py")
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO test_history (run_id, env_key, nodeid, outcome, call_ns, total_ns)"
            " VALUES (?, 'py', ?, ?, ?, ?)",
            [(run_id, n, o, ns, ns) for n, (o, ns) in outcomes.items()],
        )
    store.end_run(run_id, "ok")
    return run_id


def healed_project(make_repo: Any, tmp_path: Path) -> tuple[Path, Config]:
    """The whole loop on real parts: green run, slow+red run, a merged fix, a proposal left
    open, a green run after the merge, and the learning phase over it all."""
    import dataclasses

    from agent.phases import deployment, learning
    from agent.phases.deployment import DeployBaton, DeployRequest
    from agent.phases.learning import TrackBaton, TrackRequest
    from agent.store import Store

    total, mean = "test_calc.py::test_total", "test_calc.py::test_mean"
    repo = project(make_repo)
    cfg = config(repo, ci_command="true")
    good, bad = git(repo, "rev-parse", "HEAD~1").strip(), agit.head_commit(repo)
    patch = dataclasses.replace(make_patch(repo), strategy="partial_revert")
    other = dataclasses.replace(
        make_patch(repo, FIXED + "# also\n"), strategy="mutation", anomaly_id="a-mean"
    )
    with Store.open(cfg.store) as s:
        r1 = record_run(s, good, {total: ("passed", 4 * 10**6), mean: ("passed", 10**6)})
        r2 = record_run(s, bad, {total: ("failed", 9 * 10**6), mean: ("failed", 10**6)})
        a = dataclasses.replace(anomaly(commit=bad), run_id=r2, baseline_run_id=r1)
        b = dataclasses.replace(
            a, id="a-mean", subject=mean, kind=AnomalyKind.PERFORMANCE, subtype="slowdown"
        )
        for rec in (a, b):
            s.put(rec, run_id=r2, subject=rec.subject)
        for p in (patch, other):
            s.put(p)
            s.put(validated(p), subject=p.id)
    for p, mode in ((patch, "merge"), (other, "propose")):
        with conductor(cfg, tmp_path, deployment.HANDLERS, names=("deployment.deploy.json",)) as c:
            done = c.play("deployment.deploy", DeployBaton(DeployRequest(patch_id=p.id, mode=mode)))
    merged = agit.head_commit(repo)
    assert isinstance(done, DeployBaton) and merged != bad
    with Store.open(cfg.store) as s:
        record_run(s, merged, {total: ("passed", 3 * 10**6), mean: ("passed", 10**6)})
    with conductor(cfg, tmp_path, learning.HANDLERS, names=("learning.track.json",)) as c:
        c.play("learning.track", TrackBaton(TrackRequest()))
    return repo, cfg
