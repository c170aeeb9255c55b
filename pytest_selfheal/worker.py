"""The xdist worker side: record tests, send them with each teardown report, coverage at the end."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_selfheal.recorder import Recorder
from pytest_selfheal.runfacts import REPORT_ATTR, RecordedTest, RunInfo


class WorkerSide:
    """Registered in a worker when the controller asked for recording (via workerinput)."""

    def __init__(self, config: pytest.Config, workerinput: dict[str, Any]) -> None:
        self.config = config
        collector = None
        info = RunInfo.from_wire(workerinput["selfheal"])
        if workerinput.get("selfheal_coverage"):
            from pathlib import Path

            from agent.coverage_map import Collector

            try:
                collector = Collector(
                    Path(workerinput["selfheal_coverage_root"]),
                    workerinput.get("selfheal_coverage_omit", ()),
                    Path(workerinput["selfheal_coverage_cache"]),
                )
            except Exception:  # the controller warns once for all workers
                collector = None
        worker = str(workerinput.get("workerid", ""))
        self.recorder = Recorder(info, worker, _attach, collector)
        config.pluginmanager.register(self.recorder, "selfheal-recorder")

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.recorder.coverage is not None:
            self.recorder.coverage.start()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.recorder.coverage is not None:
            per_test, statements = self.recorder.coverage.stop()
            output = getattr(self.config, "workeroutput", None)
            if output is not None:
                output["selfheal_coverage"] = {"per_test": per_test, "statements": statements}


def _attach(record: RecordedTest, report: pytest.TestReport) -> None:
    """The record travels to the controller with the test's teardown report."""
    setattr(report, REPORT_ATTR, record.to_wire())
