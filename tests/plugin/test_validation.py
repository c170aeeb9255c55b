"""Validation mode of the plugin: a machine-readable result file, repeats, coverage, no healing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SAMPLE = """
import pytest

def test_ok():
    pass

def test_bad():
    assert 1 == 2

@pytest.mark.skip
def test_skipped():
    pass
"""


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_validation_mode_writes_outcomes_and_durations(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sample=SAMPLE)
    out = pytester.path / "result.json"
    result = pytester.runpytest("--selfheal-validate=p1", f"--selfheal-result={out}")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    data = _read(out)
    assert data["patch_id"] == "p1" and data["exitstatus"] == 1 and data["collected"] == 3
    outcomes = {t["nodeid"]: t["outcome"] for t in data["tests"]}
    assert outcomes == {
        "test_sample.py::test_ok": "passed",
        "test_sample.py::test_bad": "failed",
        "test_sample.py::test_skipped": "skipped",
    }
    assert all(isinstance(t["duration_ns"], int) for t in data["tests"])
    assert data["coverage"] is None


def test_repeat_runs_each_test_n_times(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sample="calls = []\n\ndef test_count():\n"
        "    calls.append(1)\n    assert len(calls) <= 2\n"
    )
    out = pytester.path / "result.json"
    pytester.runpytest("--selfheal-validate=p1", f"--selfheal-result={out}", "--selfheal-repeat=3")
    attempts = [(t["attempt"], t["outcome"]) for t in _read(out)["tests"]]
    assert attempts == [(1, "passed"), (2, "passed"), (3, "failed")]


def test_validation_switches_healing_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sample="def test_flag(request):\n    assert request.config.option.selfheal is False\n"
    )
    out = pytester.path / "result.json"
    result = pytester.runpytest("--selfheal", "--selfheal-validate=p1", f"--selfheal-result={out}")
    result.assert_outcomes(passed=1)


def test_validate_without_result_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sample=SAMPLE)
    result = pytester.runpytest("--selfheal-validate=p1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--selfheal-validate needs --selfheal-result=PATH*"])


def test_off_by_default_writes_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sample=SAMPLE)
    pytester.runpytest().assert_outcomes(passed=1, failed=1, skipped=1)
    assert not list(pytester.path.glob("*.json"))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_coverage_is_measured_from_before_conftest_imports(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(
        lib="def used():\n    return 1\n\n\ndef unused():\n    return 2\n",
        conftest="import lib\n",
        test_sample="import lib\n\ndef test_used():\n    assert lib.used() == 1\n",
    )
    out = pytester.path / "result.json"
    args = ["-p", "pytest_selfheal.validation", "--selfheal-validate=p1"]
    args.append(f"--selfheal-result={out}")
    result = pytester.runpytest_subprocess(*args, "--selfheal-validate-coverage", *workers)
    result.assert_outcomes(passed=1)
    lib = _read(out)["coverage"]["lib.py"]
    assert lib == {"statements": [1, 2, 5, 6], "missing": [6], "in_tests": [2]}
