"""Insights and reports over a store filled by the real delivery and learning phases; the HTML
page is opened in real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.reporting import html, text
from agent.reporting.data import ReportData, collect
from agent.store import Store
from tests.agent.phases.delivery_kit import healed_project

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def dump_dom(page: Path, tmp_path: Path) -> str:
    proc = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture
def healed(make_repo: Any, tmp_path: Path) -> tuple[Path, ReportData]:
    repo, cfg = healed_project(make_repo, tmp_path)
    with Store.open(cfg.store) as s:
        return repo, collect(s, "calc", time.time_ns())


def test_collect_reads_the_whole_loop(healed: tuple[Path, ReportData]) -> None:
    _, data = healed
    assert data.anomaly_total == 2
    assert [sum(r.by_kind.values()) for r in data.runs] == [0, 2, 0]
    ((kind, strategy, rate),) = [(s.anomaly_kind, s.strategy, s.mean) for s in data.strategies]
    assert (kind, strategy, rate) == ("error", "partial_revert", 2 / 3)
    (fix,) = data.fixes
    assert fix.outcome == "success" and fix.strategy == "partial_revert"
    (timing,) = data.timings
    assert (timing.subject, timing.before_ms, timing.after_ms) == (
        "test_calc.py::test_total",
        9.0,
        3.0,
    )
    (proposal,) = data.open_proposals
    assert proposal.branch.startswith("selfheal/slowdown-test-mean-")
    assert data.deployments_by_status == {"applied": 1, "proposed": 1}  # merged, so applied
    assert json.loads(json.dumps(data.to_json()))["strategies"][0]["successes"] == 1.0


def test_terminal_and_markdown(healed: tuple[Path, ReportData]) -> None:
    _, data = healed
    screen = "\n".join(text.terminal(data))
    assert "2 anomalies in 3 runs, 1 applied fixes, 1 open proposals" in screen
    assert re.search(r"error\s+partial_revert\s+1\s+0\s+67%", screen)
    md = text.markdown(data)
    assert "| error | partial_revert | 1 | 0 | 67% |" in md
    assert "| `test_calc.py::test_total` | partial_revert | 9.0 | 3.0 |" in md


def test_html_renders_all_charts_in_chromium_without_script_errors(
    healed: tuple[Path, ReportData], tmp_path: Path
) -> None:
    _, data = healed
    page = tmp_path / "report.html"
    page.write_text(html.render(data))
    body = page.read_text()
    assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in body
    dom = dump_dom(page, tmp_path)
    assert 'data-charts-rendered="4"' in dom
    assert 'data-errors="0"' in dom
    assert dom.count("<svg") == 4
    assert dom.count("<rect") >= 5  # two timing bars, a run's stacked bars, status bars
    assert "rendered 4 charts" in dom


def test_html_script_errors_are_caught_and_shown(tmp_path: Path) -> None:
    data = ReportData(project="p", generated_ns=time.time_ns())
    page = tmp_path / "broken.html"
    # A corrupted payload (a run without its counts) must surface as a visible error.
    body = html.render(data).replace('"runs": []', '"runs": [{"run_id": 1}]')
    page.write_text(body)
    dom = dump_dom(page, tmp_path)
    assert 'data-charts-rendered="3"' in dom
    assert 'data-errors="1"' in dom and "runs: TypeError" in dom


def test_cli_report_and_insights(
    healed: tuple[Path, ReportData], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _ = healed
    out = tmp_path / "out"
    code = main(
        [
            "--root",
            str(repo),
            "report",
            "--html",
            str(out / "r.html"),
            "--md",
            str(out / "r.md"),
            "--json",
            str(out / "r.json"),
        ]
    )
    assert code == 0
    assert json.loads((out / "r.json").read_text())["anomaly_total"] == 2
    assert (out / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["--root", str(repo), "insights", "--track"]) == 0
    assert "What works" in capsys.readouterr().out
    assert main(["--root", str(repo), "report"]) == 2
    assert "give at least one of --html" in capsys.readouterr().err
    # A proposal whose branch the developer deleted is no longer open.
    branch = healed[1].open_proposals[0].branch
    subprocess.run(["git", "branch", "-D", branch], cwd=repo, check=True, capture_output=True)
    assert main(["--root", str(repo), "report", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["open_proposals"] == []


def test_reading_commands_do_not_create_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["insights"], ["report", "--json", "-"], ["apply", "x"]):
        assert main(["--root", str(tmp_path), *argv]) == 2
        assert "no selfheal store at" in capsys.readouterr().err
    assert not (tmp_path / ".selfheal").exists()
