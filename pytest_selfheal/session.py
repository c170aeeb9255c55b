"""The controller side: run facts, collecting test records, the pipeline (in a sidecar), output."""

from __future__ import annotations

import contextlib
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from pytest_selfheal import options as opts
from pytest_selfheal import report
from pytest_selfheal.afterrun import EndFacts, Outcome, RunSpec
from pytest_selfheal.recorder import Recorder
from pytest_selfheal.runfacts import (
    REPORT_ATTR,
    RecordedTest,
    RunInfo,
    new_span_id,
    new_trace_id,
)


class SelfHealWarning(pytest.PytestWarning):
    """pytest-selfheal could not do part of its work; the test run itself is unaffected."""


def env_key(config: pytest.Config) -> str:
    """Runs are compared only within one key: Python, platform, and xdist or not."""
    numprocesses = config.getoption("numprocesses", None)
    dist = config.getoption("dist", "no")
    parallel = "xdist" if numprocesses and dist != "no" else "serial"
    py = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    return f"{py}-{sys.platform}-{platform.machine()}-{parallel}"


def omit_tests(config: pytest.Config) -> list[str]:
    """Test modules are not measured: their lines say nothing about the code under test, and
    tracing them is most of coverage's cost on a large suite."""
    patterns = [str(p) for p in config.getini("python_files")] + ["conftest.py"]
    # Nor is this plugin, which runs around every test (it matters when it tests itself).
    return [f"*/{p}" for p in patterns] + [str(Path(__file__).parent / "*")]


def uses_xdist(config: pytest.Config) -> bool:
    return env_key(config).endswith("-xdist")


class Controller:
    """Registered in the process that owns the run (the xdist controller or the only process)."""

    def __init__(self, config: pytest.Config, options: opts.Options) -> None:
        from agent.config import load_config
        from agent.errors import ConfigError

        self.config = config
        self.options = options
        self.problems: list[str] = []
        overrides: dict[str, Any] = {}
        if options.store is not None:
            overrides["store"] = str(options.store)
        if options.coverage is not None:
            overrides["coverage"] = options.coverage
        if options.budget_s is not None:
            overrides["budget_s"] = options.budget_s
        if options.deploy is not None:
            overrides["deploy"] = options.deploy
        try:
            self.settings = load_config(config.rootpath, overrides)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.root = self._repo_root()
        self.commit, self.dirty = self._git_state()
        self.info = RunInfo(
            str(config.rootpath),
            self.commit,
            self.dirty,
            env_key(config),
            new_trace_id(),
            new_span_id(),
        )
        self.records: list[RecordedTest] = []
        self.outcome: Outcome | None = None
        self.coverage_reason = ""
        self.collect_coverage = self._coverage_due()
        self.recorder: Recorder | None = None
        self._coverage: dict[str, Any] = {"per_test": {}, "statements": {}}
        self.spec = RunSpec(
            self.settings,
            self.info,
            time.time_ns(),
            self.coverage_reason,
            *self._rerun_spec(),
        )
        self.sidecar = self._start_sidecar()

    # Setup ------------------------------------------------------------------------------

    def _repo_root(self) -> Path:
        from agent.git import toplevel

        return toplevel(self.config.rootpath) or self.config.rootpath

    def _git_state(self) -> tuple[str, bool]:
        from agent.errors import GitError
        from agent.git import head_commit, is_dirty

        try:
            commit = head_commit(self.root)
            return commit, bool(commit) and is_dirty(self.root)
        except GitError:
            return "", False

    def _start_sidecar(self) -> Any:
        """The process that turns records into spans and runs the pipeline (see sidecar.py);
        None: this process does it at the end of the session."""
        from pytest_selfheal import sidecar

        if not sidecar.wanted():
            return None
        try:
            return sidecar.Sidecar.start(self.spec)
        except OSError as exc:
            self.warn(f"selfheal sidecar not started ({exc}); the pipeline runs in this process")
            return None

    @property
    def statements_cache(self) -> Path:
        return self.settings.store.parent / "coverage-statements.json"

    def _coverage_due(self) -> bool:
        mode = self.settings.coverage
        if mode == "never":
            self.coverage_reason = "off"
            return False
        if self.config.pluginmanager.hasplugin("_cov") and self.config.getoption(
            "cov_source", None
        ):
            self.coverage_reason = "left to pytest-cov"
            return False
        if mode == "always":
            self.coverage_reason = "always"
            return True
        from pytest_selfheal.afterrun import open_store

        problems: list[str] = []
        store = open_store(self.settings.store, problems)
        for problem in problems:
            self.warn(problem)
        if store is None:
            return False
        from agent.coverage_map import map_is_due

        try:
            due = map_is_due(store, self.root, self.commit, self.dirty, self.info.env_key)
        finally:
            store.close()
        self.coverage_reason = "refreshing (code changed)" if due else "not due"
        return due

    def warn(self, message: str) -> None:
        """A SelfHealWarning, or a summary line if the user's filters turn warnings into errors."""
        if message in self.problems:
            return
        self.problems.append(message)
        # Where the user's filters turn warnings into errors it is shown in the section only.
        with contextlib.suppress(SelfHealWarning):
            warnings.warn(SelfHealWarning(message), stacklevel=2)

    # Hooks ------------------------------------------------------------------------------

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["selfheal"] = self.info.to_wire()
        node.workerinput["selfheal_coverage"] = self.collect_coverage
        node.workerinput["selfheal_coverage_root"] = str(self.root)
        node.workerinput["selfheal_coverage_omit"] = omit_tests(self.config)
        node.workerinput["selfheal_coverage_cache"] = str(self.statements_cache)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get("selfheal_coverage")
        if data:
            self._merge_coverage(data)

    def _merge_coverage(self, data: dict[str, Any]) -> None:
        from agent.coverage_map import merge

        merge(self._coverage["per_test"], data.get("per_test", {}))
        for file, lines in data.get("statements", {}).items():
            self._coverage["statements"][file] = lines

    def start_local(self) -> None:
        """No xdist: this process records its own tests."""
        collector = self._collector() if self.collect_coverage else None
        self.recorder = Recorder(self.info, "main", self._take_local, collector)
        self.config.pluginmanager.register(self.recorder, "selfheal-recorder")

    def _take_local(self, record: RecordedTest, report: pytest.TestReport) -> None:
        self._take(record)

    def _take(self, record: RecordedTest) -> None:
        # Kept here too: if the sidecar fails, this process makes the spans after all.
        self.records.append(record)
        if self.sidecar is not None:
            self.sidecar.add(record)

    def _collector(self) -> Any:
        from agent.coverage_map import Collector

        try:
            return Collector(self.root, omit_tests(self.config), self.statements_cache)
        except Exception as exc:  # coverage.py refused (e.g. another tracer): record without it
            self.warn(f"per-test coverage unavailable: {exc}")
            return None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.recorder is not None and self.recorder.coverage is not None:
            self.recorder.coverage.start()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTR, None)
        if report.when != "teardown" or not data:
            return
        try:
            record = RecordedTest.from_wire(data)
        except (TypeError, ValueError, IndexError) as exc:
            self.warn(f"a worker sent an unreadable test record ({report.nodeid}): {exc}")
            return
        self._take(record)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.recorder is not None and self.recorder.coverage is not None:
            per_test, statements = self.recorder.coverage.stop()
            self._merge_coverage({"per_test": per_test, "statements": statements})
        sampler = self._sampler(session)
        end = EndFacts(
            end_ns=time.time_ns(),
            exitstatus=int(session.exitstatus),
            coverage=self._coverage if self.collect_coverage else None,
            timed=not self.collect_coverage,
            sampler=sampler is not None,
        )
        self.outcome = self._finish(end, sampler)
        for problem in self.outcome.problems:
            self.warn(problem)
        self._write_reports()
        self._apply_fail_on(session)

    def _finish(self, end: EndFacts, sampler: Any) -> Outcome:
        """The pipeline's outcome, from the sidecar or, if it failed early, made here."""
        side = self.sidecar
        if side is not None:
            outcome: Outcome | None = side.finish(end, self._progress, sampler)
            if outcome is not None:
                return outcome
            if side.started:  # it may have stored part of the run: never store it twice
                failure = f"selfheal sidecar failed while running the pipeline: {side.failure}"
                return Outcome(self._unrecorded(), [failure])
            self.warn(f"selfheal sidecar failed ({side.failure}); the pipeline ran in this process")
        return self._finish_here(end, sampler)

    def _finish_here(self, end: EndFacts, sampler: Any) -> Outcome:
        from pytest_selfheal.afterrun import run_recorded

        return run_recorded(self.spec, self.records, end, self._progress, sampler)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # A session that never reached its end (a usage error after configure, say).
        if self.sidecar is not None and self.outcome is None:
            self.sidecar.abandon()

    def _progress(self, message: str) -> None:
        """Healing progress, visible while it runs (it can take the whole budget)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        # Recording and detection are summarised in the selfheal section: their step-by-step
        # lines only at -v, so that a green run still prints one section and nothing else.
        quiet = message.startswith(("telemetry:", "anomaly.detect:"))
        if reporter is not None and (not quiet or self.config.getoption("verbose", 0) > 0):
            reporter.write_line(message)

    def _sampler(self, session: pytest.Session) -> Any:
        """In-process timing re-runs when this process ran the tests (not under xdist)."""
        if self.recorder is None or not session.items:
            return None
        from pytest_selfheal.sampler import InProcessSampler

        return InProcessSampler(session)

    def _rerun_spec(self) -> tuple[tuple[str, ...], str, float]:
        """How confirming re-runs start pytest: argv, directory, timeout."""
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        argv += ["--rootdir", str(self.config.rootpath)]
        if self.config.inipath is not None:
            argv += ["-c", str(self.config.inipath)]
        if self.config.pluginmanager.hasplugin("xdist"):
            argv += ["-n", "0"]
        if self.config.pluginmanager.hasplugin("_cov"):
            argv += ["--no-cov"]
        return tuple(argv), str(self.config.rootpath), max(60.0, self.settings.budget_s)

    def _write_reports(self) -> None:
        for fmt, path in self.options.reports:
            try:
                report.write(fmt, path, self.summary())
            except OSError as exc:
                self.warn(f"cannot write the selfheal report {path}: {exc}")

    def _apply_fail_on(self, session: pytest.Session) -> None:
        if not self.options.fail_on:
            return
        hits = [
            a
            for a in self.summary()["anomalies"]
            if opts.matches_fail_on(self.options.fail_on, a["kind"], a["subtype"])
        ]
        if hits and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    # Output ------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        data = dict(self.outcome.data) if self.outcome is not None else self._unrecorded()
        data["problems"] = list(self.problems)
        return data

    def _unrecorded(self) -> dict[str, Any]:
        """The summary of a run the pipeline did not record."""
        return report.summary(None, self.info, [], self.coverage_reason)

    def pytest_report_header(self, config: pytest.Config) -> str:
        commit = f"{self.commit[:10]}{'+dirty' if self.dirty else ''}" if self.commit else "no git"
        return (
            f"selfheal: recording to {report.display_path(self.settings.store, config.rootpath)}"
            f" ({self.info.env_key}, {commit}, coverage {self.coverage_reason})"
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        verbose = self.config.getoption("verbose", 0) > 0
        terminalreporter.write_sep("=", "selfheal")
        for line in report.terminal_lines(self.summary(), verbose):
            terminalreporter.write_line(line)
