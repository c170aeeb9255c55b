"""The sidecar process: the same run as in the test process, and every way it can fail."""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.plugin.conftest import Project

QUIET = ("-p", "no:cacheprovider", "--selfheal-coverage=never", "--selfheal-budget=0")

# Written by the inner suite: which heavy modules its test process imported.
MODULES_CONFTEST = """\
import json
import sys


def pytest_unconfigure(config):
    names = ("opentelemetry.sdk.trace", "agent.pipeline", "agent.phases.anomaly")
    with open("modules.json", "w") as out:
        json.dump([n for n in names if n in sys.modules], out)
"""

# Finds the sidecar among the test process's children (Linux /proc).
FIND_SIDECAR = """\
import os
from pathlib import Path


def sidecar_pid():
    me = os.getpid()
    for task in Path(f"/proc/{me}/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"pytest_selfheal.sidecar_main" in cmdline:
                return int(pid)
    raise AssertionError("no sidecar running")
"""

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _tests(path: Path, run_id: int) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path / ".selfheal" / "selfheal.db")
    try:
        return conn.execute(
            "SELECT s.operation, p.operation FROM spans s JOIN spans p"
            " ON p.span_id = s.parent_span_id AND p.run_id = s.run_id"
            " WHERE s.run_id = ? AND s.source = 'test' ORDER BY s.operation",
            (run_id,),
        ).fetchall()
    finally:
        conn.close()


def test_the_sidecar_records_the_run_the_test_process_would(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    project.pytester.makeconftest(MODULES_CONFTEST)
    args = ("--selfheal", "--selfheal-report=json:r.json", *QUIET)
    project.pytester.runpytest_subprocess(*args).assert_outcomes(passed=3)
    beside = project.report()
    # The test process made no span and ran no phase: a suite without OpenTelemetry of its
    # own does not even import it.
    assert json.loads((project.path / "modules.json").read_text()) == []
    monkeypatch.setenv("SELFHEAL_SIDECAR", "0")
    project.pytester.runpytest_subprocess(*args).assert_outcomes(passed=3)
    inside = project.report()
    assert json.loads((project.path / "modules.json").read_text()) == [
        "opentelemetry.sdk.trace",
        "agent.pipeline",
        "agent.phases.anomaly",
    ]
    assert (beside["tests"], inside["tests"]) == (3, 3)
    assert (beside["baseline_runs"], inside["baseline_runs"]) == (0, 1)
    expected = [(f"test_{n}", "pytest session") for n in ("fast", "ratio", "slow")]
    assert _tests(project.path, beside["run_id"]) == expected
    assert _tests(project.path, inside["run_id"]) == expected


@linux_only
def test_a_sidecar_that_dies_during_the_run_leaves_the_run_to_the_test_process(
    project: Project,
) -> None:
    project.pytester.makepyfile(
        test_zkill=FIND_SIDECAR
        + "\n\ndef test_kill_the_sidecar():\n    os.kill(sidecar_pid(), 9)\n"
    )
    result = project.pytester.runpytest_subprocess("--selfheal", *QUIET)
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "run *: 4 tests recorded*",
            "problem: selfheal sidecar failed (*); the pipeline ran in this process",
        ]
    )


@linux_only
def test_a_session_that_dies_takes_its_sidecar_with_it(project: Project) -> None:
    project.pytester.makepyfile(
        test_zdie=FIND_SIDECAR
        + "\n\ndef test_die():\n"
        + "    Path('sidecar.pid').write_text(str(sidecar_pid()))\n"
        + "    os._exit(3)\n"
    )
    result = project.pytester.runpytest_subprocess("--selfheal", *QUIET)
    assert result.ret == 3
    pid = int((project.path / "sidecar.pid").read_text())
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid), "the sidecar outlived its session"
    store = project.path / ".selfheal" / "selfheal.db"
    if store.exists():
        conn = sqlite3.connect(store)
        finished = conn.execute(
            "SELECT count(*) FROM runs WHERE kind = 'test' AND status = 'ok'"
        ).fetchone()
        conn.close()
        assert finished == (0,)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True
