"""A pytest plugin loaded into our test subprocesses: outcomes, failing frames, per-test coverage.

Loaded with `-p agent.phases.diagnosis.probe`; it writes one JSON file named by
SELFHEAL_PROBE_OUT when the session ends. With SELFHEAL_PROBE_COVERAGE=1 it also measures line
coverage with coverage.py, switching the dynamic context to each test's node id, so every line
is attributed to the tests that ran it. It imports only pytest, coverage and the standard library.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import pytest

OUT_ENV = "SELFHEAL_PROBE_OUT"
COVERAGE_ENV = "SELFHEAL_PROBE_COVERAGE"
_MAX_REPR = 200


class _Probe:
    def __init__(self, root: Path, out: Path, measure: bool) -> None:
        self.root = root
        self.out = out
        self.tests: dict[str, dict[str, Any]] = {}
        self.cov: Any = None
        if measure:
            import coverage

            self.cov = coverage.Coverage(data_file=None, source=[str(root)], config_file=False)
            self.cov.start()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        if self.cov is not None:
            self.cov.switch_context(item.nodeid)
        started = time.perf_counter_ns()
        yield
        entry = self.tests.setdefault(item.nodeid, {"outcome": "passed"})
        entry["duration_ns"] = time.perf_counter_ns() - started
        if self.cov is not None:
            self.cov.switch_context("")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        entry = self.tests.setdefault(item.nodeid, {"outcome": "passed"})
        if report.failed:
            entry["outcome"] = "failed" if report.when == "call" else "error"
            entry["longrepr"] = str(report.longrepr)[-8000:]
            if call.excinfo is not None:
                entry["exception"] = call.excinfo.typename
                entry["frames"] = _frames(call.excinfo.tb, self.root)
        elif report.skipped and entry["outcome"] == "passed":
            entry["outcome"] = "skipped"

    def pytest_sessionfinish(self) -> None:
        coverage: dict[str, list[list[Any]]] = {}
        if self.cov is not None:
            self.cov.stop()
            coverage = _per_test_lines(self.cov.get_data(), self.root)
        body = {"tests": self.tests, "coverage": coverage}
        self.out.write_text(json.dumps(body), encoding="utf-8")


def _frames(tb: TracebackType | None, root: Path) -> list[dict[str, Any]]:
    """Frames inside the project, outermost first, with short reprs of the arguments."""
    frames = []
    while tb is not None:
        frame: FrameType = tb.tb_frame
        path = Path(frame.f_code.co_filename)
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            rel = ""
        if rel:
            frames.append(
                {
                    "file": rel,
                    "line": tb.tb_lineno,
                    "function": frame.f_code.co_qualname,
                    "args": _arg_reprs(frame),
                }
            )
        tb = tb.tb_next
    return frames


def _arg_reprs(frame: FrameType) -> dict[str, str]:
    code = frame.f_code
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    result = {}
    for name in names:
        try:
            text = repr(frame.f_locals.get(name))
        except Exception:  # a broken __repr__ in user code must not break the probe
            continue
        if len(text) <= _MAX_REPR:
            result[name] = text
    return result


def _per_test_lines(data: Any, root: Path) -> dict[str, list[list[Any]]]:
    result: dict[str, list[list[Any]]] = {}
    for measured in data.measured_files():
        try:
            rel = Path(measured).resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            continue
        for line, contexts in data.contexts_by_lineno(measured).items():
            for ctx in contexts:
                if ctx:
                    result.setdefault(ctx, []).append([rel, line])
    return result


def pytest_configure(config: pytest.Config) -> None:
    out = os.environ.get(OUT_ENV)
    if not out:
        return
    measure = os.environ.get(COVERAGE_ENV) == "1"
    root = Path(config.invocation_params.dir).resolve()
    config.pluginmanager.register(_Probe(root, Path(out), measure), "selfheal-probe")
