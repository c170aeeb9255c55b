"""The plugin end to end with pytester: switches, xdist, a corrupt store, and real detections."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.plugin.conftest import Project

QUIET = ("-p", "no:cacheprovider", "--selfheal-coverage=never", "--selfheal-budget=0")


def test_off_by_default(project: Project) -> None:
    result = project.pytester.runpytest(*QUIET[:2])
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*= selfheal =*")
    assert not (project.path / ".selfheal").exists()


def test_enabled_by_option_first_run_has_no_baseline(project: Project) -> None:
    result = project.pytester.runpytest("--selfheal", *QUIET)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "selfheal: recording to .selfheal*selfheal.db (py3.*-serial, *, coverage off)",
            "*= selfheal =*",
            "run *: 3 tests recorded, first recorded run here: nothing to compare with yet;"
            " 0 anomalies",
        ]
    )
    assert (project.path / ".selfheal" / ".gitignore").is_file()


def test_enabled_by_ini_and_disabled_by_p_no(project: Project) -> None:
    project.pytester.makeini("[pytest]\nselfheal = true\nselfheal_coverage = never\n")
    on = project.pytester.runpytest("-p", "no:cacheprovider")
    on.stdout.fnmatch_lines(["*= selfheal =*", "run *: 3 tests recorded*"])
    off = project.pytester.runpytest("-p", "no:selfheal", "-p", "no:cacheprovider")
    off.assert_outcomes(passed=3)
    off.stdout.no_fnmatch_line("*= selfheal =*")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--selfheal-report=xml:r.xml",
            "*--selfheal-report='xml:r.xml': expected json:PATH or md:PATH*",
        ),
        ("--selfheal-fail-on=speed", "*--selfheal-fail-on='speed': unknown kind 'speed'*"),
        ("--selfheal-budget=soon", "*--selfheal-budget='soon': expected a number of seconds*"),
    ],
)
def test_bad_option_values_are_usage_errors(project: Project, option: str, message: str) -> None:
    result = project.pytester.runpytest("--selfheal", *QUIET, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_corrupt_store_keeps_the_run_green(project: Project) -> None:
    store = project.path / ".selfheal" / "selfheal.db"
    store.parent.mkdir()
    store.write_bytes(b"this is not a database" * 100)
    result = project.pytester.runpytest("--selfheal", *QUIET)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "run *: 3 tests recorded*",
            "problem: selfheal store *unreadable*moved to selfheal.db.corrupt-*",
        ]
    )
    assert list(store.parent.glob("selfheal.db.corrupt-*"))


def test_records_every_test_as_a_span_with_its_facts(project: Project) -> None:
    project.pytester.runpytest("--selfheal", "--selfheal-report=json:r.json", *QUIET)
    data = project.report()
    conn = sqlite3.connect(project.path / ".selfheal" / "selfheal.db")
    rows = conn.execute(
        "SELECT operation, parent_span_id, json_extract(payload, '$.attributes')"
        " FROM spans WHERE run_id = ? AND source = 'test' AND operation != 'pytest session'"
        " ORDER BY operation",
        (data["run_id"],),
    ).fetchall()
    session = conn.execute(
        "SELECT span_id FROM spans WHERE run_id = ? AND operation = 'pytest session'",
        (data["run_id"],),
    ).fetchone()
    conn.close()
    assert [r[0] for r in rows] == ["test_fast", "test_ratio", "test_slow"]
    assert {r[1] for r in rows} == {session[0]}
    import json

    attrs = json.loads(rows[2][2])
    assert attrs["selfheal.test.nodeid"] == "test_app.py::test_slow"
    assert attrs["selfheal.test.outcome"] == "passed"
    assert attrs["selfheal.test.call_ns"] >= 10_000_000
    assert attrs["vcs.ref.head.revision"] == data["commit"] and len(data["commit"]) == 40
    assert attrs["selfheal.git.dirty"] is False
    assert attrs["code.file.path"] == "test_app.py" and attrs["code.line.number"] == 4


def test_new_failure_is_detected_and_grouped_by_signature(project: Project) -> None:
    project.pytester.runpytest("--selfheal", *QUIET)
    project.edit("app.py", "return a / b", "return a / (b - 2)", "break ratio")
    result = project.pytester.runpytest(
        "--selfheal", "--selfheal-report=json:r.json", "--selfheal-report=md:out/r.md", *QUIET
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["HIGH     error/new_failure: 1 test(s) newly fail with ZeroDivisionError in ratio*"]
    )
    markdown = (project.path / "out" / "r.md").read_text(encoding="utf-8")
    assert "## HIGH error/new_failure: `ZeroDivisionError@app.py:ratio`" in markdown
    assert "| signature | ZeroDivisionError@app.py:ratio |" in markdown
    (anomaly,) = project.report()["anomalies"]
    assert anomaly["subject"] == "ZeroDivisionError@app.py:ratio"
    assert anomaly["tests"] == ["test_app.py::test_ratio"]
    assert anomaly["evidence"]["confirmed_by_rerun"] == 1


def test_flaky_test_is_reported_as_flaky_not_as_a_regression(project: Project) -> None:
    project.commit(
        {
            "test_flaky.py": (
                "from pathlib import Path\n\n\ndef test_sometimes():\n"
                "    counter = Path(__file__).with_name('count.txt')\n"
                "    n = int(counter.read_text()) if counter.exists() else 0\n"
                "    counter.write_text(str(n + 1))\n"
                "    assert n % 2 == 0\n"
            ),
        },
        "add a flaky test",
    )
    project.pytester.runpytest("--selfheal", *QUIET)
    result = project.pytester.runpytest("--selfheal", "--selfheal-report=json:r.json", *QUIET)
    result.assert_outcomes(passed=3, failed=1)
    (anomaly,) = project.report()["anomalies"]
    assert (anomaly["kind"], anomaly["subtype"]) == ("error", "flaky")
    assert anomaly["subject"] == "test_flaky.py::test_sometimes"
    assert anomaly["evidence"]["source"] == "history on this commit"


def test_injected_slowdown_is_detected_and_fail_on_fails_the_run(project: Project) -> None:
    for _ in range(2):
        project.pytester.runpytest("--selfheal", *QUIET)
    project.edit("app.py", "seconds=0.01", "seconds=0.05", "slower")
    result = project.pytester.runpytest(
        "--selfheal",
        "--selfheal-fail-on=performance",
        "--selfheal-report=json:r.json",
        "-v",
        *QUIET,
    )
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "CRITICAL performance/slowdown: test_app.py::test_slow is *x slower*",
            "*confidence=*; ratio=*, current_median_ms=*, baseline_median_ms=*, *p_adjusted=*",
        ]
    )
    (anomaly,) = project.report()["anomalies"]
    assert anomaly["evidence"]["ratio"] > 3
    assert anomaly["evidence"]["n_current"] >= 5 and anomaly["evidence"]["n_baseline"] == 2


def test_a_coverage_refresh_run_still_detects_a_slowdown(project: Project) -> None:
    for _ in range(2):
        project.pytester.runpytest("--selfheal", *QUIET)
    project.edit("app.py", "seconds=0.01", "seconds=0.05", "slower")
    traced = ("--selfheal", "--selfheal-coverage=always", "--selfheal-budget=0")
    result = project.pytester.runpytest(*traced, "--selfheal-report=json:r.json", *QUIET[:2])
    result.assert_outcomes(passed=3)
    (anomaly,) = project.report()["anomalies"]
    assert anomaly["subtype"] == "slowdown" and anomaly["subject"] == "test_app.py::test_slow"
    # Judged on untraced re-runs, never on the traced run's own duration.
    assert anomaly["evidence"]["n_current"] >= 5


def test_per_test_marker_thresholds(project: Project) -> None:
    project.edit(
        "test_app.py",
        "def test_slow():",
        "@pytest.mark.selfheal(ratio=10.0)\ndef test_slow():",
        "tolerate slowness",
    )
    project.edit("test_app.py", "import app", "import pytest\n\nimport app", "import pytest")
    for _ in range(2):
        project.pytester.runpytest("--selfheal", *QUIET)
    project.edit("app.py", "seconds=0.01", "seconds=0.05", "slower")
    result = project.pytester.runpytest("--selfheal", "--selfheal-report=json:r.json", *QUIET)
    result.assert_outcomes(passed=3)
    assert project.report()["anomalies"] == []


@pytest.mark.slow
def test_xdist_workers_send_records_to_the_controller(project: Project) -> None:
    args = ("--selfheal", "-n", "2", "--selfheal-report=json:r.json", *QUIET)
    first = project.pytester.runpytest_subprocess(*args)
    first.assert_outcomes(passed=3)
    first.stdout.fnmatch_lines(["run *: 3 tests recorded, first recorded run*"])
    project.edit("app.py", "return a / b", "return a / (b - 2)", "break ratio")
    second = project.pytester.runpytest_subprocess(*args)
    second.assert_outcomes(passed=2, failed=1)
    data = project.report()
    assert data["env_key"].endswith("-xdist")
    assert [a["subtype"] for a in data["anomalies"]] == ["new_failure"]
    conn = sqlite3.connect(project.path / ".selfheal" / "selfheal.db")
    workers = {
        r[0]
        for r in conn.execute(
            "SELECT json_extract(payload, '$.attributes.\"selfheal.test.worker\"') FROM spans"
            " WHERE source = 'test' AND operation != 'pytest session'"
        )
    }
    conn.close()
    assert workers <= {"gw0", "gw1"} and workers


def test_works_with_lf_x_and_k(project: Project) -> None:
    project.pytester.runpytest("--selfheal", *QUIET)
    result = project.pytester.runpytest(
        "--selfheal", *QUIET[2:], "--lf", "-x", "-k", "slow or fast", "-q"
    )
    result.assert_outcomes(passed=2, deselected=1)
    result.stdout.fnmatch_lines(["run *: 2 tests recorded, compared with 1 earlier run(s)*"])


def test_order_dependent_failure_is_confirmed_by_rerun(project: Project) -> None:
    project.commit(
        {
            "registry.py": "ITEMS = []\n",
            "test_order.py": (
                "import registry\n\n\ndef test_adds():\n    assert registry.ITEMS == []\n\n\n"
                "def test_empty():\n    assert registry.ITEMS == []\n"
            ),
        },
        "registry",
    )
    project.pytester.runpytest("--selfheal", *QUIET)
    project.edit(
        "test_order.py",
        "def test_adds():\n    assert registry.ITEMS == []",
        "def test_adds():\n    registry.ITEMS.append(1)",
        "test_adds leaks state",
    )
    result = project.pytester.runpytest("--selfheal", "--selfheal-report=json:r.json", *QUIET)
    result.assert_outcomes(passed=4, failed=1)
    (anomaly,) = project.report()["anomalies"]
    assert (anomaly["kind"], anomaly["subtype"]) == ("behavioral", "order_dependent")
    assert anomaly["subject"] == "test_order.py::test_empty"
    assert anomaly["evidence"]["alone"] == "passed,passed,passed"
    assert anomaly["evidence"]["after_predecessors"] == "failed"


def test_the_suites_random_numbers_are_its_own(pytester: pytest.Pytester) -> None:
    """Recording draws no number from the global `random` a suite may have seeded."""
    pytester.makeconftest(
        "import random\n\nrandom.seed(1234)\n\n\n"
        "def pytest_collection_finish(session):\n    random.seed(1234)\n"
    )
    body = "import random\n\n\ndef record():\n    with open('drawn.txt', 'a') as f:\n"
    body += "        f.write(f'{random.random()}\\n')\n"
    pytester.makepyfile(
        test_draws=body + "".join(f"\n\ndef test_{i}():\n    record()\n" for i in range(3))
    )
    drawn = pytester.path / "drawn.txt"
    pytester.runpytest(*QUIET[:2]).assert_outcomes(passed=3)
    plain = drawn.read_text()
    drawn.unlink()
    pytester.runpytest("--selfheal", *QUIET).assert_outcomes(passed=3)
    assert drawn.read_text() == plain


def test_suites_that_reseed_before_each_test_still_get_distinct_span_ids(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        "import random\n\nimport pytest\n\n\n@pytest.fixture(autouse=True)\n"
        "def same_numbers():\n    random.seed(7)\n"
    )
    pytester.makepyfile(test_many="".join(f"def test_{i}():\n    pass\n\n\n" for i in range(5)))
    pytester.runpytest("--selfheal", *QUIET).assert_outcomes(passed=5)
    conn = sqlite3.connect(pytester.path / ".selfheal" / "selfheal.db")
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT span_id FROM spans WHERE source = 'test' AND operation != 'pytest session'"
        )
    ]
    conn.close()
    assert len(ids) == 5 and len(set(ids)) == 5
