"""One self-contained HTML page: embedded JSON data, tables, SVG charts drawn by our script."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from pathlib import Path

from agent.reporting import text
from agent.reporting.data import ReportData

CHARTS = ("timing", "runs", "rates", "proposals")

ASSETS = Path(__file__).resolve().parent


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    if not rows:
        return f"<p class='legend'>{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)

    def cell(c: str) -> str:
        numeric = c.replace(".", "", 1).replace("%", "").lstrip("+-").isdigit()
        return f"<td class='num'>{_e(c)}</td>" if numeric else f"<td>{_e(c)}</td>"

    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kpis(data: ReportData) -> str:
    heal = "-" if data.median_heal_ns is None else f"{data.median_heal_ns / 60e9:.1f} min"
    judged = [f for f in data.fixes if f.outcome != "pending"]
    held = sum(f.success for f in judged)
    items = [
        (str(data.anomaly_total), "anomalies"),
        (str(len(data.runs)), "runs"),
        (f"{held}/{len(judged)}", "fixes that held"),
        (str(len(data.open_proposals)), "open proposals"),
        (heal, "median time to heal"),
    ]
    return "".join(f"<div class='kpi'><b>{_e(v)}</b><span>{_e(k)}</span></div>" for v, k in items)


def _figure(chart: str, title: str, wide: bool = False) -> str:
    cls = " class='wide'" if wide else ""
    return f"<section{cls}><h2>{_e(title)}</h2><figure data-chart='{chart}'></figure></section>"


def render(data: ReportData) -> str:
    """The whole page; the JSON is embedded so the page needs nothing but itself."""
    payload = json.dumps(data.to_json(), sort_keys=True).replace("</", "<\\/")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(data.generated_ns / 1e9))
    sections = [
        f"<section class='wide'><div class='kpis'>{_kpis(data)}</div></section>",
        _figure("timing", "Timing of healed subjects, before and after"),
        _figure("runs", "Anomalies per run"),
        _figure("rates", "Strategy success rates over time"),
        _figure("proposals", "Deliveries by status"),
        "<section class='wide'><h2>Open proposals</h2>"
        + _table(
            ["patch", "mode", "branch", "pull request"], text.proposal_rows(data), "None open."
        )
        + "</section>",
        "<section class='wide'><h2>Applied fixes</h2>"
        + _table(
            ["patch", "kind", "strategy", "outcome", "timing", "errors", "runs", "healed"],
            text.fix_rows(data),
            "No applied fix found in git history yet.",
        )
        + "</section>",
        "<section><h2>What works</h2>"
        + _table(
            ["kind", "strategy", "held", "failed", "expected"],
            text.strategy_rows(data),
            "No outcomes yet.",
        )
        + "</section>",
        "<section><h2>Hotspots</h2>"
        + _table(
            ["where", "runs"],
            [[w, str(n)] for w, n in data.hotspots],
            "Nothing has regressed twice.",
        )
        + "</section>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>selfheal report: {_e(data.project)}</title>"
        f"<style>{_asset('report.css')}</style></head><body>"
        f"<header><h1>selfheal report: {_e(data.project)}</h1>"
        f"<p>generated {_e(when)} · <span id='render-status'>charts need JavaScript</span></p>"
        f"</header><main>{''.join(sections)}</main><pre id='script-errors'></pre>"
        f"<script type='application/json' id='report-data'>{payload}</script>"
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )
