"""Wall-time overhead of `pytest --selfheal` against plain pytest, and of a coverage refresh.

One command: `python bench/overhead.py [--runs N]`. Two suites:
  generated  2,000 trivial tests in 20 files, in a fresh git repository;
  project    this project's own pure unit tests (tests/agent/test_stats.py, test_records.py,
             test_sketch.py, test_store.py), run in place with a throw-away store.
For each suite: median wall time of `pytest --selfheal` on a green run with nothing new
(coverage not due) over plain `pytest`, runs interleaved; then a run that refreshes the per-test
coverage map (`--selfheal-coverage=always`) over `pytest --cov --cov-context=test` (pytest-cov).
Both on a store in its steady state: first primed with as many runs as a test's history keeps
(20 by default, every fifth a coverage refresh, as code changes make them), so that what is
measured is a project's everyday run, not the first days of a store whose histories are short.
"""

from __future__ import annotations

import _path  # noqa: F401 - first: bench/ off sys.path (see bench/_path.py)

# isort: split

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.config import Config

ROOT = Path(__file__).resolve().parent.parent
PROJECT_TESTS = [
    "tests/agent/test_stats.py",
    "tests/agent/test_records.py",
    "tests/agent/test_sketch.py",
    "tests/agent/test_store.py",
    # Same for every variant: under tracing, hypothesis touches a deprecated mypy_extensions
    # name and the project's filterwarnings=error would turn that into an internal error.
    "-W",
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning",
]
GIT = {
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}


def make_generated(base: Path) -> Path:
    repo = base / "generated"
    repo.mkdir()
    (repo / "pkg").mkdir()
    (repo / "pkg" / "__init__.py").write_text("def inc(x):\n    return x + 1\n")
    for m in range(20):
        body = "from pkg import inc\n\n" + "\n".join(
            f"def test_{i}():\n    assert inc({i}) == {i + 1}\n" for i in range(100)
        )
        (repo / f"test_gen_{m}.py").write_text(body)
    (repo / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    env = {**os.environ, **GIT}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "gen"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    return repo


# Bytecode caching on, as on a developer machine (some sandboxes set PYTHONDONTWRITEBYTECODE,
# which makes every run compile every imported module and blurs what is measured here).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PRIMING = Config().history  # the runs a test's history keeps
CPU: dict[str, list[float]] = {}  # CPU seconds (user + sys) per variant: steadier on a busy box


def timed(cmd: list[str], cwd: Path, label: str = "") -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=ENV)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    CPU.setdefault(label, []).append(cpu)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise SystemExit(
            f"failed ({proc.returncode}): {' '.join(cmd)}\n{tail}\n{proc.stderr[-2000:]}"
        )
    return elapsed


def bench_suite(  # noqa: PLR0917 - a script's one call site
    name: str, cwd: Path, targets: list[str], store: Path, cov: str, runs: int
) -> None:
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets]
    heal = [*pytest, "--selfheal", f"--selfheal-store={store}", "--selfheal-budget=0"]
    for i in range(PRIMING):  # a store in its steady state (see the module docstring)
        timed([*heal, f"--selfheal-coverage={'always' if i % 5 == 0 else 'never'}"], cwd)
    CPU.clear()
    plain_t, heal_t = [], []
    for _ in range(runs):
        plain_t.append(timed(pytest, cwd, "plain"))
        heal_t.append(timed([*heal, "--selfheal-coverage=never"], cwd, "heal"))
    green_sequences = sequence_ms(store, last=runs)
    cov_plain, cov_heal = [], []
    for _ in range(max(3, runs // 2)):
        cov_cmd = [*pytest, f"--cov={cov}", "--cov-context=test", "--cov-report="]
        cov_plain.append(timed(cov_cmd, cwd, "cov"))
        cov_heal.append(timed([*heal, "--selfheal-coverage=always"], cwd, "heal_cov"))
    p, h = statistics.median(plain_t), statistics.median(heal_t)
    cp, ch = statistics.median(cov_plain), statistics.median(cov_heal)
    print(f"{name}: plain {p:.2f}s, --selfheal {h:.2f}s -> ratio {h / p:.3f} (target <= 1.10)")
    print(
        f"{name}: pytest --cov --cov-context=test {cp:.2f}s, --selfheal with coverage refresh "
        f"{ch:.2f}s -> ratio {ch / cp:.3f} (target <= 1.00)"
    )
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    print(
        f"{name}: CPU seconds (median) plain {cpu['plain']:.2f}, --selfheal {cpu['heal']:.2f} "
        f"-> {cpu['heal'] / cpu['plain']:.3f}; --cov {cpu['cov']:.2f}, --selfheal refresh "
        f"{cpu['heal_cov']:.2f} -> {cpu['heal_cov'] / cpu['cov']:.3f}"
    )
    print(
        f"{name}: raw wall plain {fmt(plain_t)} selfheal {fmt(heal_t)} cov {fmt(cov_plain)} "
        f"selfheal+cov {fmt(cov_heal)}"
    )
    parts = ", ".join(f"{seq} {ms:.0f} ms" for seq, ms in green_sequences.items())
    print(f"{name}: green runs' sequences (median, from their beat spans): {parts}")


def sequence_ms(store: Path, last: int) -> dict[str, float]:
    """Median duration of each sequence over the last `last` pipeline runs in the store."""
    conn = sqlite3.connect(store)
    try:
        runs = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT run_id FROM spans WHERE source = 'beat'"
                " ORDER BY run_id DESC LIMIT ?",
                (last,),
            )
        ]
        rows = conn.execute(
            "SELECT operation, duration_ns FROM spans WHERE source = 'beat'"
            f" AND operation LIKE 'sequence %' AND run_id IN ({','.join('?' * len(runs))})",
            runs,
        ).fetchall()
    finally:
        conn.close()
    found: dict[str, list[float]] = {}
    for operation, duration_ns in rows:
        found.setdefault(operation.removeprefix("sequence "), []).append(duration_ns / 1e6)
    return {seq: statistics.median(values) for seq, values in found.items()}


def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved runs per variant")
    parser.add_argument("--only", choices=("generated", "project"), default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="selfheal-overhead-"))
    try:
        if args.only in (None, "generated"):
            repo = make_generated(tmp)
            bench_suite("generated", repo, [], tmp / "gen.db", "pkg", args.runs)
        if args.only in (None, "project"):
            bench_suite("project", ROOT, PROJECT_TESTS, tmp / "project.db", "agent", args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
