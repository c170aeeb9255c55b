"""Repair benchmark: the whole pipeline on every seeded bug in bench/repair/.

    python bench/repair.py [--budget SECONDS] [--keep DIR] [NAME ...]

Bugs with history are healed the way a user meets them: two green `pytest --selfheal` runs on
the good commit, then `pytest --selfheal --selfheal-budget=B` on the regressing HEAD. Bugs
without history have no baseline to detect against, so their failing tests are handed to
`agent.heal.heal` directly. Each patch is then judged on held-out tests the pipeline never saw.
Prints, per bug and in total: validated patch found, correct on held-out tests, time to heal,
and the Ochiai rank of the truly faulty line.
"""

from __future__ import annotations

import _path  # noqa: F401 - first: bench/ off sys.path (see bench/_path.py)

# isort: split

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "repair"))

from bug import Bug, Built, build, git  # noqa: E402

from build import by_name  # noqa: E402

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


@dataclass(frozen=True)
class Result:
    bug: Bug
    validated: bool
    correct: bool
    seconds: float
    rank: int | None  # Ochiai rank of the faulty line; None when not among the ranked lines
    strategy: str
    note: str = ""


def _env(store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SELFHEAL_", "PYTEST_"))}
    env["SELFHEAL_STORE"] = str(store)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _pytest(repo: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PYTEST, *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )


def heal_with_history(built: Built, budget: float) -> float:
    env = _env(built.repo / ".selfheal" / "selfheal.db")
    git(built.repo, "checkout", "-q", built.good_commit)
    for _ in range(3):
        _pytest(built.repo, ["--selfheal", "--selfheal-budget=0"], env)
    git(built.repo, "checkout", "-q", "main")
    started = time.monotonic()
    proc = _pytest(built.repo, ["--selfheal", f"--selfheal-budget={budget}"], env)
    (built.repo.parent / f"{built.repo.name}.log").write_text(proc.stdout + proc.stderr)
    return time.monotonic() - started


def heal_without_history(built: Built, budget: float) -> float:
    """Find the failing tests, then heal them as one error anomaly (no baseline exists)."""
    from agent.conductor import Conductor
    from agent.config import load_config
    from agent.heal import heal
    from agent.phases.diagnosis.pytest_exec import run_pytest
    from agent.records import Anomaly, AnomalyKind, Severity

    started = time.monotonic()
    run = run_pytest(built.repo, ["tests"])
    failing = tuple(sorted(t for t, r in run.tests.items() if not r.ok))
    if not failing:
        return time.monotonic() - started
    anomaly = Anomaly(
        id=f"bench-{built.repo.name}",
        kind=AnomalyKind.ERROR,
        subtype="failing",
        severity=Severity.HIGH,
        confidence=1.0,
        subject=failing[0],
        description=f"{len(failing)} failing test(s)",
        detected_ns=time.time_ns(),
        commit=built.head,
        tests=failing,
    )
    config = load_config(built.repo, {"store": str(built.repo / ".selfheal" / "selfheal.db")})
    lines: list[str] = []
    with Conductor(config, progress=lines.append) as conductor:
        outcome = heal(conductor, [anomaly], budget, lines.append)
    lines += outcome.lines(built.repo)
    (built.repo.parent / f"{built.repo.name}.log").write_text("\n".join(lines) + "\n")
    return time.monotonic() - started


def judge(bug: Bug, built: Built, diff_path: Path) -> bool:
    """Apply the patch to a fresh clone, add the held-out tests, run everything."""
    with tempfile.TemporaryDirectory(prefix="heldout-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(built.repo), str(clone)], check=True)
        applied = subprocess.run(["git", "apply", str(diff_path)], cwd=clone, check=False)
        if applied.returncode != 0:
            return False
        (clone / "tests" / "test_heldout.py").write_text(bug.heldout, encoding="utf-8")
        proc = _pytest(clone, ["tests"], _env(Path(tmp) / "unused.db"))
        return proc.returncode == 0


def ochiai_rank(built: Built, bug: Bug) -> int | None:
    import sqlite3

    db = built.repo / ".selfheal" / "selfheal.db"
    if not db.exists():
        return None
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT payload FROM records WHERE kind = 'Diagnosis'").fetchall()
    finally:
        conn.close()
    ranks = []
    for (payload,) in rows:
        for cause in json.loads(payload)["root_causes"]:
            loc, ev = cause["location"], cause["evidence"]
            ochiai = ev.get("kind") == "ochiai" and loc["file"] == bug.module
            if ochiai and loc["line"] in built.faulty_lines:
                ranks.append(int(ev["rank"]))
    return min(ranks) if ranks else None


def best_patch(built: Built) -> tuple[Path | None, str]:
    patches = sorted((built.repo / ".selfheal" / "patches").glob("*.diff"))
    if not patches:
        return None, ""
    import sqlite3

    conn = sqlite3.connect(built.repo / ".selfheal" / "selfheal.db")
    try:
        row = conn.execute(
            "SELECT payload FROM records WHERE id = ?", (patches[0].stem,)
        ).fetchone()
    finally:
        conn.close()
    return patches[0], json.loads(row[0])["strategy"] if row else "?"


def run_one(bug: Bug, workdir: Path, budget: float) -> Result:
    built = build(bug, workdir / bug.name)
    heal_fn = heal_with_history if bug.history else heal_without_history
    seconds = heal_fn(built, budget)
    diff, strategy = best_patch(built)
    correct = diff is not None and judge(bug, built, diff)
    rank = ochiai_rank(built, bug)
    dirty = git(built.repo, "status", "--porcelain").strip()
    note = f"working tree changed: {dirty}" if dirty else ""
    return Result(bug, diff is not None, correct, seconds, rank, strategy, note)


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.0f}%)" if d else "0/0"


def report(results: list[Result]) -> None:
    print(
        f"{'bug':28} {'category':28} {'hist':4} {'valid':5} {'held':5} {'time':>6} "
        f"{'rank':>4}  strategy"
    )
    for r in results:
        rank = "-" if r.rank is None else str(r.rank)
        print(
            f"{r.bug.name:28} {r.bug.category:28} {'yes' if r.bug.history else 'no':4} "
            f"{'yes' if r.validated else 'no':5} {'yes' if r.correct else 'no':5} "
            f"{r.seconds:6.1f} {rank:>4}  {r.strategy}{'  ' + r.note if r.note else ''}"
        )
    n = len(results)
    plain = [r for r in results if not r.bug.history]
    top5 = sum(1 for r in plain if r.rank is not None and r.rank <= 5)
    times = [r.seconds for r in results if r.validated]
    print()
    print(
        f"validated patch found:     {_pct(sum(r.validated for r in results), n)}  (target >= 80%)"
    )
    print(f"correct on held-out tests: {_pct(sum(r.correct for r in results), n)}  (target >= 70%)")
    if times:
        print(
            f"median time to heal:       {statistics.median(times):.1f} s over validated bugs "
            f"(all bugs: {statistics.median(r.seconds for r in results):.1f} s; target <= 60 s)"
        )
    print(f"faulty line in Ochiai top 5 (no history): {_pct(top5, len(plain))}  (target >= 70%)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="bugs to run (default: all)")
    parser.add_argument("--budget", type=float, default=90.0, help="healing budget per bug")
    parser.add_argument("--keep", metavar="DIR", help="build the repositories here and keep them")
    args = parser.parse_args(argv)
    bugs = by_name(args.names)
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="selfheal-repair-"))
    if workdir.exists() and args.keep:
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for bug in bugs:
        result = run_one(bug, workdir, args.budget)
        print(
            f"  {bug.name}: validated={result.validated} correct={result.correct} "
            f"{result.seconds:.1f}s rank={result.rank}",
            flush=True,
        )
        results.append(result)
    print()
    report(results)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
