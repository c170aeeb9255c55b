"""Slowdown detection rate per slowdown size, and the false-positive rate on unchanged runs.

One command: `python bench/detection.py [--trials N] [--unchanged N]`. A generated suite in a
fresh git repository: tests sleeping 20, 50 or 100 ms with multiplicative noise of 0, 5 or 15 %
(uniform), one test per (length, noise, slowdown) and as many unchanged controls. Each trial
records baseline runs with `pytest --selfheal`, then commits a change that slows the chosen
tests by 1.1x, 1.3x, 1.5x, 2x or 5x and runs once more: a slowed test is detected when the run
reports a performance/slowdown anomaly for it. Then `--unchanged` more runs of unchanged code:
every slowdown reported there is a false positive. Default thresholds: ratio 1.25, floor 5 ms,
family-wise alpha 0.05 (Holm), confirming re-runs in the pytest process.
Targets: >= 95 % of slowdowns of 1.5x or more detected; false positives <= 1 % of tests.
"""

from __future__ import annotations

import _path  # noqa: F401 - first: bench/ off sys.path (see bench/_path.py)

# isort: split

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FACTORS = (1.1, 1.3, 1.5, 2.0, 5.0)
LENGTHS_MS = (20, 50, 100)
NOISES = (0.0, 0.05, 0.15)
GIT = {
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}

TEST_FILE = """\
import json
import random
import time
from pathlib import Path

import pytest

FACTORS = json.loads(Path(__file__).with_name("factors.json").read_text())
CASES = {cases!r}


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(name):
    length_ms, noise = CASES[name]
    factor = FACTORS.get(name, 1.0)
    time.sleep(length_ms / 1000 * factor * (1 + noise * random.uniform(-1, 1)))
"""


def cases() -> dict[str, tuple[int, float]]:
    result = {}
    for length in LENGTHS_MS:
        for noise in NOISES:
            for label in (*FACTORS, "control"):
                result[f"l{length}_n{int(noise * 100)}_{label}"] = (length, noise)
    return result


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=repo, check=True, env={**os.environ, **GIT}, capture_output=True
    )


def make_repo(base: Path, trial: int) -> Path:
    repo = base / f"trial{trial}"
    repo.mkdir()
    (repo / "test_timing.py").write_text(TEST_FILE.format(cases=cases()))
    (repo / "factors.json").write_text("{}")
    (repo / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "suite")
    return repo


def run(repo: Path) -> list[str]:
    """One `pytest --selfheal` run; the subjects of its slowdown anomalies."""
    report = repo / "report.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--selfheal",
        "--selfheal-budget=0",
        "--selfheal-coverage=never",
        f"--selfheal-report=json:{report}",
    ]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"run failed in {repo}:\n{proc.stdout[-3000:]}")
    data = json.loads(report.read_text())
    return [a["subject"] for a in data["anomalies"] if a["subtype"] == "slowdown"]


def name_of(subject: str) -> str:
    return subject.split("[", 1)[1].rstrip("]") if "[" in subject else subject


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=5, help="baseline runs per trial")
    parser.add_argument("--unchanged", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="selfheal-detection-"))
    detected = dict.fromkeys(FACTORS, 0)
    total = dict.fromkeys(FACTORS, 0)
    control_hits = 0
    try:
        for trial in range(args.trials):
            repo = make_repo(tmp, trial)
            for _ in range(args.baseline):
                run(repo)
            factors = {n: float(n.rsplit("_", 1)[1]) for n in cases() if not n.endswith("control")}
            (repo / "factors.json").write_text(json.dumps(factors))
            git(repo, "commit", "-q", "-am", "slow down")
            found = {name_of(s) for s in run(repo)}
            for name, factor in factors.items():
                total[factor] += 1
                detected[factor] += name in found
            control_hits += sum(1 for n in found if n.endswith("control"))
            print(f"trial {trial}: {len(found)} slowdowns reported", flush=True)
        repo = make_repo(tmp, args.trials)  # fresh history: unchanged code from the start
        for _ in range(args.baseline):
            run(repo)
        fp = 0
        for _ in range(args.unchanged):
            fp += len(run(repo))
        tests = len(cases())
        for factor in FACTORS:
            rate = detected[factor] / total[factor] if total[factor] else 0.0
            print(
                f"slowdown {factor:>3}x: detected {detected[factor]}/{total[factor]} = {rate:.0%}"
            )
        big = sum(detected[f] for f in FACTORS if f >= 1.5)
        big_total = sum(total[f] for f in FACTORS if f >= 1.5)
        print(f"slowdowns >= 1.5x: {big}/{big_total} = {big / big_total:.1%} (target >= 95%)")
        print(f"unchanged controls flagged in injected runs: {control_hits}")
        print(
            f"false positives in {args.unchanged} unchanged runs: {fp}/{tests * args.unchanged}"
            f" test-runs = {fp / (tests * args.unchanged):.2%} (target <= 1%)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
