"""Cost of the learning phase on every `pytest --selfheal` run, by number of patches to judge.

    python bench/learning.py

Builds a real git repository with a long history and a real store holding K validated patches
(half of them applied by hand somewhere in the history, half never applied), then plays
learning.track several times and prints the median wall time per K and its ratio to K = 0
(an empty store: the cost every green run pays).
"""

from __future__ import annotations

import _path  # noqa: F401 - first: bench/ off sys.path (see bench/_path.py)

# isort: split

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.conductor import Conductor
from agent.config import build_config
from agent.phases.learning import track
from agent.records import Anomaly, AnomalyKind, FixType, Patch, Severity, ValidationResult
from agent.store import Store

HISTORY = 200
SIZES = (0, 10, 40)
REPEATS = 5
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@x",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@x",
}


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=ENV, input=stdin, text=True, capture_output=True, check=True
    ).stdout


def make_repo(root: Path, modules: int) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(max(modules, 1)):
        (repo / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    for n in range(HISTORY):
        (repo / "log.txt").write_text(f"entry {n}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", f"work {n}")
    return repo


def patch_for(repo: Path, i: int, base: str) -> str:
    (repo / f"m{i}.py").write_text(f"def f{i}(x):\n    return x - {i}\n")
    diff = git(repo, "diff")
    git(repo, "checkout", "-q", "--", f"m{i}.py")
    return diff


def fill_store(repo: Path, store: Store, k: int) -> None:
    base = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    for i in range(k):
        diff = patch_for(repo, i, base)
        pid = f"patch-{i:04d}"
        store.put(
            Anomaly(
                f"a{i}",
                AnomalyKind.ERROR,
                "new_failure",
                Severity.HIGH,
                0.9,
                f"tests/test_m.py::test_f{i}",
                "x",
                time.time_ns(),
                run_id=1,
                tests=(f"tests/test_m.py::test_f{i}",),
            )
        )
        store.put(
            Patch(
                pid,
                f"a{i}",
                "",
                "mutation",
                FixType.CODE,
                diff,
                base,
                time.time_ns(),
                files=(f"m{i}.py",),
            )
        )
        store.put(ValidationResult(f"v{i}", pid, True, time.time_ns()), subject=pid)
        if i % 2 == 0:  # applied by hand, in the middle of the history
            git(repo, "apply", "--index", "-", stdin=diff)
            git(repo, "commit", "-qm", f"fix f{i}")


def measure(k: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        repo = make_repo(Path(tmp), k)
        config = build_config(repo, {}, source="bench")
        with Store.open(config.store) as store:
            fill_store(repo, store, k)
        times = []
        with Conductor(config) as conductor:
            for _ in range(REPEATS):
                started = time.perf_counter()
                track(conductor)
                times.append(time.perf_counter() - started)
        return statistics.median(times)


def main() -> int:
    print(f"learning.track on a {HISTORY}-commit history, median of {REPEATS} plays")
    base = None
    for k in SIZES:
        median = measure(k)
        base = base or median
        print(
            f"  {k:3d} validated patches ({k // 2 + k % 2} applied): {median * 1000:8.1f} ms"
            f"   ratio to an empty store {median / base:6.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
