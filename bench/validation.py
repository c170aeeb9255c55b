"""Validation gate benchmark: `affected` vs `full` selection on a generated 2,000-test project.

    python bench/validation.py [--tests 2000] [--mutants 24] [--runs 3]

1. Generates a git project with N tests over 40 modules; `pricing.price` has a bug one test
   catches. `pytest --selfheal --selfheal-coverage=always` records the per-test coverage map.
2. Measures the xdist crossover (serial vs `-n 2`) on growing test sets.
3. Validates the one-function fix `--runs` times with `affected` and with `full` selection
   (cold: no cached baseline) and prints the median wall times and their ratio.
4. Validates >= 20 mutants of the fixed function both ways and counts identical verdicts.
"""

from __future__ import annotations

import _path  # noqa: F401 - first: bench/ off sys.path (see bench/_path.py)

# isort: split

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from agent.conductor import Conductor  # noqa: E402
from agent.config import load_config  # noqa: E402
from agent.phases.validation import (  # noqa: E402
    ValidationRequest,
    stages,
    validate_baton,
)
from agent.records import Anomaly, AnomalyKind, FixType, Patch, Severity  # noqa: E402

MODULES = 40
PRICE_FIXED = '''\
def price(quantity, unit, discount):
    """Total for `quantity` items at `unit` each; `discount` percent off from 10 items."""
    if quantity <= 0:
        return 0
    total = quantity * unit
    if quantity >= 10:
        total = total - total * discount / 100
    return round(total, 2)
'''
PRICE_BUGGY = PRICE_FIXED.replace("quantity >= 10", "quantity > 10")
PRICING_TESTS = """\
from proj.pricing import price


def test_price_zero():
    assert price(0, 5, 10) == 0


def test_price_negative():
    assert price(-3, 5, 10) == 0


def test_price_small_order():
    assert price(3, 2.5, 10) == 7.5


def test_price_bulk_boundary():
    assert price(10, 1, 10) == 9.0


def test_price_bulk_large():
    assert price(20, 2, 50) == 20.0


def test_price_rounds():
    assert price(3, 0.3333, 0) == 1.0


def test_price_no_discount():
    assert price(12, 1, 0) == 12
"""
ANOMALY_TEST = "tests/test_pricing.py::test_price_bulk_boundary"
# (old, new) replacements inside PRICE_FIXED, each one first-order mutant.
MUTATIONS = [
    ("quantity <= 0", "quantity < 0"),
    ("quantity <= 0", "quantity <= 1"),
    ("quantity <= 0", "quantity >= 0"),
    ("return 0", "return 1"),
    ("return 0", "return None"),
    ("quantity * unit", "quantity + unit"),
    ("quantity * unit", "quantity * quantity"),
    ("quantity >= 10", "quantity > 10"),
    ("quantity >= 10", "quantity >= 11"),
    ("quantity >= 10", "quantity >= 9"),
    ("quantity >= 10", "quantity <= 10"),
    ("total - total", "total + total"),
    ("total * discount", "unit * discount"),
    ("discount / 100", "discount / 10"),
    ("discount / 100", "discount // 100"),
    ("round(total, 2)", "round(total, 1)"),
    ("round(total, 2)", "round(total)"),
    ("round(total, 2)", "total"),
    ("    if quantity <= 0:\n        return 0\n", ""),
    ("total = total - total * discount / 100", "total = total"),
    ("return round(total, 2)", "return round(total, 2) or 0"),
    ("total = quantity * unit", "total = unit * quantity"),
    ("discount / 100", "discount / 100.0"),
    ("quantity >= 10", "10 <= quantity"),
]


def module_source(index: int) -> str:
    return (
        f'"""Generated module {index}."""\n\n\n'
        f"def work_{index}(n):\n"
        "    total = 0\n"
        "    for i in range(n):\n"
        "        total += i * i % 7\n"
        "    return total\n"
    )


def test_source(index: int, count: int) -> str:
    return (
        "import pytest\n\n"
        f"from proj.mod_{index} import work_{index}\n\n\n"
        f"@pytest.mark.parametrize('n', range({count}))\n"
        f"def test_work_{index}(n):\n"
        f"    assert work_{index}(2000 + n) >= 0\n"
    )


def generate(root: Path, tests: int) -> None:
    pkg = root / "proj"
    (root / "tests").mkdir(parents=True)
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "pricing.py").write_text(PRICE_BUGGY, encoding="utf-8")
    (root / "tests" / "test_pricing.py").write_text(PRICING_TESTS, encoding="utf-8")
    per_module = (tests - PRICING_TESTS.count("def test_")) // MODULES
    for i in range(MODULES):
        (pkg / f"mod_{i}.py").write_text(module_source(i), encoding="utf-8")
        (root / "tests" / f"test_mod_{i}.py").write_text(test_source(i, per_module), "utf-8")
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n', encoding="utf-8"
    )
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "gen"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env)


def pytest_time(root: Path, args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - started


def record_coverage_map(root: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--selfheal",
            "--selfheal-coverage=always",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if "selfheal" not in proc.stdout:
        sys.exit(f"recording the coverage map failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def xdist_sweep(root: Path, sizes: list[int], per_file: int) -> None:
    """Serial against `-n 2`, in the sandbox with coverage as validation runs them."""
    from agent.runner import run_pytest

    files = sorted(str(p.relative_to(root)) for p in (root / "tests").glob("test_mod_*.py"))
    print("xdist crossover (validation runs with coverage; serial vs -n 2, seconds):")
    for size in sizes:
        chosen = files[: max(1, round(size / per_file))]
        serial = run_pytest(root, chosen, patch_id="sweep", coverage=True).duration_s
        parallel = run_pytest(root, chosen, patch_id="sweep", coverage=True, workers=2).duration_s
        print(
            f"  {len(chosen) * per_file:5d} tests: serial {serial:6.2f}  -n 2 {parallel:6.2f}  "
            f"gain {serial / parallel:4.2f}x"
        )


def patch_for(root: Path, source: str, pid: str) -> Patch:
    path = root / "proj" / "pricing.py"
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(source, encoding="utf-8")
        diff = subprocess.run(
            ["git", "diff", "--no-color"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    finally:
        path.write_text(original, encoding="utf-8")
    return Patch(pid, "a1", "d1", "bench", FixType.CODE, diff, "", time.time_ns())


ANOMALY = Anomaly(
    "a1",
    AnomalyKind.ERROR,
    "new_failure",
    Severity.HIGH,
    1.0,
    ANOMALY_TEST,
    "fails",
    0,
    tests=(ANOMALY_TEST,),
)


def run_once(
    cond: Conductor, patch: Patch, selection: str, cold: bool
) -> tuple[float, bool, tuple[str, ...], str]:
    if cold:
        stages._BASELINES.clear()
        shutil.rmtree(cond.config.root / ".selfheal" / "cache", ignore_errors=True)
    started = time.perf_counter()
    baton = validate_baton(cond, ValidationRequest(patch, ANOMALY, selection=selection))
    elapsed = time.perf_counter() - started
    assert baton.result is not None
    failed = tuple(sorted(c.name for c in baton.result.checks if not c.passed))
    chosen = baton.selection.reason if baton.selection else "-"
    return elapsed, baton.result.passed, failed, chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--mutants", type=int, default=len(MUTATIONS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as tmp:
        root = Path(tmp) / "project"
        generate(root, args.tests)
        print(f"project: {args.tests} tests in {root}")
        print(
            f"plain full suite, serial: {pytest_time(root, []):.2f}s; "
            f"-n 2: {pytest_time(root, ['-n', '2']):.2f}s"
        )
        print(f"recording the coverage map (pytest --selfheal): {record_coverage_map(root):.2f}s")
        if not args.no_sweep:
            per_file = (args.tests - PRICING_TESTS.count("def test_")) // MODULES
            xdist_sweep(root, [400, 1000, args.tests], per_file)
        with Conductor(load_config(root)) as cond:
            fix = patch_for(root, PRICE_FIXED, "fix")
            times: dict[str, list[float]] = {"affected": [], "full": []}
            for _ in range(args.runs):
                for selection in ("affected", "full"):
                    elapsed, passed, failed, chosen = run_once(cond, fix, selection, cold=True)
                    times[selection].append(elapsed)
                    verdict = f"passed={passed} {failed} [{chosen}]"
                    print(f"  fix, {selection:8s}: {elapsed:6.2f}s {verdict}")
            med = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"one-function fix, cold (baseline coverage measured): affected median "
                f"{med['affected']:.2f}s, full median {med['full']:.2f}s, "
                f"ratio {med['affected'] / med['full']:.3f}"
            )
            warm: dict[str, list[float]] = {"affected": [], "full": []}
            for _ in range(args.runs):
                for selection in ("affected", "full"):
                    warm[selection].append(run_once(cond, fix, selection, cold=False)[0])
            wmed = {k: statistics.median(v) for k, v in warm.items()}
            print(
                f"one-function fix, warm (baseline cached, as for every later candidate): "
                f"affected median {wmed['affected']:.2f}s, full median {wmed['full']:.2f}s, "
                f"ratio {wmed['affected'] / wmed['full']:.3f}"
            )
            agree = 0
            # A mutant equal to the buggy base is no candidate at all (an empty diff).
            mutants = [
                m
                for m in MUTATIONS
                if m[0] in PRICE_FIXED and PRICE_FIXED.replace(m[0], m[1], 1) != PRICE_BUGGY
            ][: args.mutants]
            killed = 0
            for n, (old, new) in enumerate(mutants):
                mutant = patch_for(root, PRICE_FIXED.replace(old, new, 1), f"mutant-{n}")
                a = run_once(cond, mutant, "affected", cold=False)
                f = run_once(cond, mutant, "full", cold=False)
                same = a[1] == f[1] and a[2] == f[2]
                agree += same
                killed += not f[1]
                print(
                    f"  mutant {n:2d} {old!r} -> {new!r}: affected {a[1]} {a[2]} {a[0]:.1f}s, "
                    f"full {f[1]} {f[2]} {f[0]:.1f}s {'same' if same else 'DIFFERENT'}"
                )
            print(f"mutants: {agree}/{len(mutants)} identical verdicts ({killed} rejected by full)")
            ratio = med["affected"] / med["full"]
            wratio = wmed["affected"] / wmed["full"]
            print(
                f"RESULT ratio cold={ratio:.3f} warm={wratio:.3f} (target <= 0.25) "
                f"agreement={agree}/{len(mutants)}"
            )
            return 0 if ratio <= 0.25 and agree == len(mutants) else 1


if __name__ == "__main__":
    raise SystemExit(main())
