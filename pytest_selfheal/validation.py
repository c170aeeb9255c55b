"""Validation mode: run a candidate's tests and write outcomes, timings and coverage as JSON."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

RESULT_VERSION = 1
_COVERAGE_KEY = "_selfheal_validation_coverage"
IN_TEST = "test"


def add_options(group: Any, parser: pytest.Parser) -> None:
    """The validation-mode options; plugin.py calls this from its pytest_addoption."""
    group.addoption(
        "--selfheal-validate",
        action="store",
        dest="selfheal_validate",
        default=None,
        metavar="PATCH_ID",
        help="validation mode: run the tests of candidate PATCH_ID, never heal.",
    )
    group.addoption(
        "--selfheal-result",
        action="store",
        dest="selfheal_result",
        default=None,
        metavar="PATH",
        help="validation mode: write per-test outcomes and durations as JSON to PATH.",
    )
    group.addoption(
        "--selfheal-validate-coverage",
        action="store_true",
        dest="selfheal_validate_coverage",
        default=False,
        help="validation mode: measure line coverage of the project and write it too.",
    )
    group.addoption(
        "--selfheal-repeat",
        action="store",
        dest="selfheal_repeat",
        type=int,
        default=1,
        metavar="N",
        help="validation mode: run every selected test N times in a row.",
    )


def is_validating(config: pytest.Config) -> bool:
    return bool(config.getoption("selfheal_validate", None))


def configure(config: pytest.Config) -> None:
    """Register the recorder in validation mode; healing is switched off (no recursion)."""
    if not is_validating(config):
        return
    result = config.getoption("selfheal_result")
    if not result:
        raise pytest.UsageError("--selfheal-validate needs --selfheal-result=PATH")
    repeat = config.getoption("selfheal_repeat")
    if repeat < 1:
        raise pytest.UsageError(f"--selfheal-repeat must be at least 1, got {repeat}")
    config.option.selfheal = False
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ValidationRecorder(config, Path(result)), "selfheal-validate")
    if repeat > 1:
        config.pluginmanager.register(_Repeater(repeat), "selfheal-repeat")
    cov = getattr(config, _COVERAGE_KEY, None)
    if cov is not None:
        config.pluginmanager.register(_TestContext(cov), "selfheal-validate-context")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Start coverage before conftest files import project code (active via `-p` only)."""
    args = early_config.known_args_namespace
    if getattr(args, "selfheal_validate", None) and getattr(
        args, "selfheal_validate_coverage", False
    ):
        result = getattr(args, "selfheal_result", None)
        if result:
            _start_coverage(early_config, Path(result))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist workers save their coverage here; the controller combines it later."""
    cov = getattr(session.config, _COVERAGE_KEY, None)
    if cov is not None and hasattr(session.config, "workerinput"):
        cov.stop()
        cov.save()


def _coverage_dir(result: Path) -> Path:
    return result.with_name(result.name + ".coverage")


def _start_coverage(config: pytest.Config, result: Path) -> None:
    import coverage

    directory = _coverage_dir(result)
    directory.mkdir(parents=True, exist_ok=True)
    cov = coverage.Coverage(
        data_file=str(directory / "data"),
        data_suffix=True,
        source=[str(Path.cwd())],
        config_file=False,
    )
    cov.start()
    setattr(config, _COVERAGE_KEY, cov)


class _TestContext:
    """Marks lines run inside a test (as the per-test coverage map records them) apart from
    import and collection time, so both can be compared like with like."""

    def __init__(self, cov: Any) -> None:
        self.cov = cov

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self) -> Generator[None, None, None]:
        self.cov.switch_context(IN_TEST)
        try:
            yield
        finally:
            self.cov.switch_context("")


class _Repeater:
    """Runs each test N times back to back, as pytest-rerunfailures re-runs a test."""

    def __init__(self, repeat: int) -> None:
        self.repeat = repeat

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        from _pytest.runner import runtestprotocol

        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for attempt in range(1, self.repeat + 1):
            last = attempt == self.repeat
            # The real nextitem every time, as pytest-rerunfailures does: each attempt tears
            # down and sets up its fixtures afresh.
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
            for report in reports:
                report.user_properties.append(("selfheal_attempt", attempt))
                item.ihook.pytest_runtest_logreport(report=report)
            if not last and hasattr(item, "_initrequest"):
                item._initrequest()
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True


class ValidationRecorder:
    """Collects reports in the controller and writes the result file at the end."""

    def __init__(self, config: pytest.Config, path: Path) -> None:
        self.config = config
        self.path = path
        self.collected = 0
        self.errors: list[str] = []
        self.tests: dict[tuple[str, int], dict[str, Any]] = {}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append(f"{report.nodeid or '<root>'}: {_first_line(report)}")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = len(session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.collected = max(self.collected, len(ids))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        attempt = dict(report.user_properties).get("selfheal_attempt", 1)
        key = (report.nodeid, int(attempt) if isinstance(attempt, int) else 1)
        entry = self.tests.setdefault(
            key, {"nodeid": report.nodeid, "outcome": "passed", "duration_ns": 0}
        )
        entry["attempt"] = key[1]
        entry["duration_ns"] += int(report.duration * 1e9) if report.when == "call" else 0
        outcome = _outcome(report)
        if outcome != "passed" and entry["outcome"] in ("passed", "xfailed"):
            entry["outcome"] = outcome
            entry["message"] = _first_line(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        data: dict[str, Any] = {
            "version": RESULT_VERSION,
            "patch_id": self.config.getoption("selfheal_validate"),
            "exitstatus": int(exitstatus),
            "collected": self.collected,
            "tests": list(self.tests.values()),
            "collection_errors": self.errors,
            "coverage": None,
            "finished_ns": time.time_ns(),
        }
        if self.config.getoption("selfheal_validate_coverage"):
            data["coverage"] = _collect_coverage(self.config, self.path)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.path)  # atomic: a reader never sees half a file


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.when != "call" and report.failed:
        return "error"
    return str(report.outcome)


def _first_line(report: pytest.TestReport | pytest.CollectReport) -> str:
    text = str(report.longrepr or "").strip().splitlines()
    return text[-1][:300] if text else ""


def _collect_coverage(config: pytest.Config, result: Path) -> dict[str, Any]:
    """Combine this process's and the workers' data; statements and missing lines per file."""
    import coverage

    own = getattr(config, _COVERAGE_KEY, None)
    if own is not None:
        own.stop()
        own.save()
    directory = _coverage_dir(result)
    root = Path(config.rootpath)
    cov = coverage.Coverage(data_file=str(directory / "data"), config_file=False)
    cov.combine([str(directory)], keep=False)
    files: dict[str, Any] = {}
    data = cov.get_data()
    for name in data.measured_files():
        path = Path(name)
        try:
            rel = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
        _, statements, _, missing, _ = cov.analysis2(name)
        by_line = data.contexts_by_lineno(name) or {}
        in_tests = sorted(line for line, ctxs in by_line.items() if IN_TEST in ctxs)
        files[rel] = {
            "statements": sorted(statements),
            "missing": sorted(missing),
            "in_tests": [line for line in in_tests if line in statements],
        }
    return files
