"""`selfheal demo`: the whole loop on an embedded example project with a real regression."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import SelfHealError

if TYPE_CHECKING:
    from agent.records import Deployment

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
Out = Callable[[str], None]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="heal a regression in an embedded example project, end to end",
        description="Copy an example project with a git history into a new directory, record "
        "green test runs, then run `pytest --selfheal` on a commit that breaks one function "
        "and slows another: anomalies, diagnosis, validated patches, a proposal branch, and "
        "what learning makes of the fix once it is applied. Offline; the project is kept.",
    )
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help="where to create the project (default: a new temporary directory)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=90.0,
        metavar="SECONDS",
        help="healing time budget for the broken run (default 90)",
    )
    parser.set_defaults(func=run)


@dataclass
class Demo:
    """One demo session: a project directory, a printer, and what each stage found."""

    root: Path
    budget_s: float
    out: Out
    found: dict[str, int] = field(default_factory=dict)

    @property
    def project(self) -> Path:
        return self.root / "demo-shop"

    # Building the project --------------------------------------------------------------

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.project,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
        if proc.returncode != 0:
            raise SelfHealError(f"demo: git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def commit_step(self, step: str | None, message: str) -> None:
        if step is not None:
            shutil.copytree(DEMO_DIR / "steps" / step, self.project, dirs_exist_ok=True)
        self.git("add", "-A")
        self.git("commit", "-q", "--no-verify", "-m", message)

    def create(self) -> list[dict[str, str | None]]:
        history = json.loads((DEMO_DIR / "history.json").read_text(encoding="utf-8"))
        if self.project.exists():
            raise SelfHealError(f"demo: {self.project} already exists; choose another --dir")
        shutil.copytree(
            DEMO_DIR / "project",
            self.project,
            ignore=shutil.ignore_patterns("__pycache__", ".selfheal"),
        )
        # Written here, not shipped: package data globs do not carry dotfiles.
        (self.project / ".gitignore").write_text(".selfheal/\n__pycache__/\n.pytest_cache/\n")
        self.git("init", "-q", "-b", "main")
        # A local identity so the demo's commits work on a machine without a global one.
        self.git("config", "user.name", "Demo Developer")
        self.git("config", "user.email", "developer@demo-shop.invalid")
        commits: list[dict[str, str | None]] = history["commits"]
        self.found["green_runs"] = 0
        return commits

    # Running pytest --------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SELFHEAL_", "PYTEST_", "COV_CORE"))
        }
        return {**env, "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}

    def pytest(self, *extra: str, stream: bool) -> tuple[int, list[str]]:
        """`pytest --selfheal` in the project as a subprocess; stream or just collect lines."""
        cmd = [sys.executable, "-m", "pytest", "--selfheal", "-p", "no:cacheprovider", *extra]
        proc = subprocess.Popen(
            cmd,
            cwd=self.project,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        lines = []
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if stream:
                self.out(f"  | {line}")
        return proc.wait(), lines

    def green_run(self, label: str) -> None:
        code, lines = self.pytest("-q", stream=False)
        tail = [ln for ln in lines if ln.startswith("run ") or " passed" in ln]
        self.out(f"  {label}: " + " / ".join(tail[-2:]))
        if code != 0:
            raise SelfHealError("demo: a green run failed:\n" + "\n".join(lines[-20:]))
        self.found["green_runs"] += 1

    # Showing what the store holds -------------------------------------------------------

    def show_findings(self) -> None:
        from agent.records import Anomaly, Deployment, Diagnosis, Patch, ValidationResult
        from agent.store import Store

        with Store.open(self.project / ".selfheal" / "selfheal.db") as store:
            anomalies = store.find(Anomaly)
            diagnoses = store.find(Diagnosis)
            patches = store.find(Patch)
            validations = {v.patch_id: v for v in store.find(ValidationResult)}
            deployments = store.find(Deployment)
        self.found.update(anomalies=len(anomalies), diagnoses=len(diagnoses))
        self.section(f"Anomalies ({len(anomalies)})")
        for a in sorted(anomalies, key=lambda a: (-a.severity.rank, a.subject)):
            self.out(f"  {a.severity.value:8} {a.kind.value}/{a.subtype}: {a.subject}")
            self.out(f"           {a.description}")
        self.section(f"Diagnosis ({len(diagnoses)})")
        for d in diagnoses[:6]:
            cause = d.root_causes[0] if d.root_causes else None
            where = f"{cause.location.file}:{cause.location.line}" if cause else "?"
            culprit = f", culprit commit {d.culprit_commit[:10]}" if d.culprit_commit else ""
            self.out(
                f"  {d.anomaly_id[:10]}: {cause.description if cause else 'no cause'} "
                f"at {where}{culprit}"
            )
            if d.suggested_fixes:
                self.out(
                    "           strategies: " + ", ".join(f.strategy for f in d.suggested_fixes[:5])
                )
        good = [p for p in patches if validations.get(p.id) and validations[p.id].passed]
        self.found["validated"] = len(good)
        self.section(f"Validated patches ({len(good)} of {len(patches)} candidates)")
        for p in good:
            v = validations[p.id]
            self.out(
                f"  {p.id[:12]} {p.strategy}: {', '.join(p.files)} ({p.size} lines); "
                f"gate: {v.tests_passed} passed, {v.tests_failed} failed, "
                f"{len(v.checks)} checks green"
            )
            for line in p.diff.splitlines():
                if line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
                    self.out(f"      {line}")
        self.show_deployments(deployments)

    def show_deployments(self, deployments: Sequence[Deployment]) -> None:
        proposed = [
            d
            for d in deployments
            if d.branch and d.status.value in ("proposed", "merged", "deployed")
        ]
        self.found["proposals"] = len(proposed)
        self.section(f"Proposal branches ({len(proposed)})")
        for d in proposed:
            log = self.git("log", "--format=%h %s", f"main..{d.branch}").strip()
            self.out(f"  {d.branch}  ({d.status.value})")
            self.out(f"      {log}")
            body = self.git("log", "-1", "--format=%b", d.branch).strip().splitlines()
            for line in body[:6]:
                self.out(f"      | {line}")

    def accept_proposals(self) -> int:
        """Do what a developer would: apply each proposal and commit it."""
        from agent.cli import main
        from agent.records import Deployment, DeploymentStatus
        from agent.store import Store

        with Store.open(self.project / ".selfheal" / "selfheal.db") as store:
            todo = [d for d in store.find(Deployment) if d.status is DeploymentStatus.PROPOSED]
        applied = 0
        for d in reversed(todo):  # oldest first
            self.out(f"  $ selfheal apply {d.patch_id[:12]}")
            if main(["--root", str(self.project), "apply", d.patch_id]) != 0:
                self.out("    (skipped: that change is already in the tree)")
                continue
            self.git("commit", "-q", "-am", f"Apply selfheal proposal {d.branch}")
            applied += 1
        self.found["applied"] = applied
        return applied

    def show_learning(self) -> None:
        from agent.phases.learning.model import strategy_stats
        from agent.records import EffectivenessData
        from agent.store import Store

        with Store.open(self.project / ".selfheal" / "selfheal.db") as store:
            records = store.find(EffectivenessData)
            stats = strategy_stats(store)
        self.found["judged"] = sum(r.outcome != "pending" for r in records)
        self.section(f"Learning record ({len(records)} applied fixes)")
        for r in records:
            before, after = r.before.get("failure_rate"), r.after.get("failure_rate")
            rate = (
                f"failure rate {before:.0%} -> {after:.0%}"
                if before is not None and after is not None
                else ""
            )
            ms = (
                f"{r.before['duration_ms']:.1f} -> {r.after['duration_ms']:.1f} ms"
                if "duration_ms" in r.before and "duration_ms" in r.after
                else ""
            )
            self.out(
                f"  {r.strategy} on {r.anomaly_kind.value}: {r.outcome}; "
                + "; ".join(x for x in (rate, ms) if x)
            )
        for s in stats:
            self.out(
                f"  model: {s.anomaly_kind}/{s.strategy}: {s.successes:g} held, "
                f"{s.failures:g} failed, expected success {s.mean:.0%}"
            )

    def section(self, title: str) -> None:
        self.out("")
        self.out(f"-- {title}")

    def stage(self, n: int, title: str) -> None:
        self.out("")
        self.out(f"[{n}/6] {title}")


def play(demo: Demo) -> int:
    """The six stages; returns 0 when the loop reached a validated patch on a proposal branch."""
    started = time.monotonic()
    out = demo.out
    demo.stage(1, f"An example project with a history, in {demo.project}")
    commits = demo.create()
    green = json.loads((DEMO_DIR / "history.json").read_text(encoding="utf-8"))["green_runs"]
    demo.stage(2, "Green history: pytest --selfheal records runs on the good commits")
    for i, (commit, runs) in enumerate(zip(commits[:-1], green, strict=True)):
        demo.commit_step(commit["step"], str(commit["message"]))
        for n in range(runs):
            demo.green_run(f"commit {i + 1}, run {n + 1}")
    last = commits[-1]
    demo.commit_step(last["step"], str(last["message"]))
    demo.stage(3, f"A new commit: {last['message']}")
    for line in demo.git("show", "--stat", "--format=%h %s", "HEAD").strip().splitlines():
        out(f"  {line}")
    demo.stage(
        4, "pytest --selfheal on it: detect, diagnose, generate and validate patches, propose"
    )
    demo.pytest(f"--selfheal-budget={demo.budget_s:g}", stream=True)
    demo.show_findings()
    demo.stage(5, "Accepting the proposals as a developer would (selfheal apply, git commit)")
    demo.accept_proposals()
    demo.stage(6, "pytest --selfheal again: learning follows the fixes through git history")
    demo.pytest("-q", "--selfheal-budget=0", stream=True)  # record and learn; no new healing
    from agent.cli import main

    main(["--root", str(demo.project), "insights", "--track"])
    demo.show_learning()
    report = demo.project / ".selfheal" / "report.html"
    main(["--root", str(demo.project), "report", "--html", str(report)])
    return verdict(demo, time.monotonic() - started, report)


def verdict(demo: Demo, seconds: float, report: Path) -> int:
    f, out = demo.found, demo.out
    out("")
    out(
        f"demo finished in {seconds:.0f} s: {f.get('anomalies', 0)} anomalies, "
        f"{f.get('validated', 0)} validated patches, {f.get('proposals', 0)} proposal branches, "
        f"{f.get('applied', 0)} applied, {f.get('judged', 0)} judged by learning"
    )
    out(f"report: {report}")
    out(f"the project is kept for you: cd {demo.project} && git log --all --oneline --graph")
    missing = [name for name in ("anomalies", "validated", "proposals") if not f.get(name)]
    if missing:
        out(f"selfheal demo: the loop stopped early: no {', no '.join(missing)}")
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    if args.budget <= 0:
        raise SelfHealError(f"demo --budget={args.budget:g}: expected a positive number of seconds")
    root = Path(args.dir).resolve() if args.dir else Path(tempfile.mkdtemp(prefix="selfheal-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    demo = Demo(root, args.budget, lambda line: print(line, flush=True))
    return play(demo)
