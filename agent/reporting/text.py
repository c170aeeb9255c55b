"""Plain renderings of the report: aligned terminal tables and Markdown."""

from __future__ import annotations

from collections.abc import Sequence

from agent.reporting.data import ReportData


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; numbers are right-aligned."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for cell, width in zip(cells, widths, strict=True):
            numeric = cell.replace(".", "", 1).replace("%", "").replace("-", "", 1).isdigit()
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        return "  ".join(out).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def short_id(record_id: str) -> str:
    """The distinctive end of an id (`patch-4eb17b887572` -> `4eb17b8875`)."""
    return record_id.rsplit("-", 1)[-1][:10]


def _minutes(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 60e9:.1f} min"


def strategy_rows(data: ReportData) -> list[list[str]]:
    return [
        [s.anomaly_kind, s.strategy, f"{s.successes:g}", f"{s.failures:g}", f"{s.mean:.0%}"]
        for s in data.strategies
    ]


def fix_rows(data: ReportData) -> list[list[str]]:
    rows = []
    for f in data.fixes:
        perf = f"{f.performance_improvement:+.0%}" if "duration_ms" in f.after else "-"
        err = f"{f.error_improvement:+.2f}" if f.error_improvement else "-"
        rows.append(
            [
                short_id(f.patch_id),
                f.anomaly_kind.value,
                f.strategy,
                f.outcome,
                perf,
                err,
                str(f.runs_after),
                _minutes(f.time_to_heal_ns or None),
            ]
        )
    return rows


def proposal_rows(data: ReportData) -> list[list[str]]:
    return [[short_id(d.patch_id), d.mode, d.branch, d.pr_url or "-"] for d in data.open_proposals]


def terminal(data: ReportData) -> list[str]:
    """The `selfheal insights` screen."""
    out = [
        f"selfheal insights for {data.project}: {data.anomaly_total} anomalies in "
        f"{len(data.runs)} runs, {len(data.fixes)} applied fixes, "
        f"{len(data.open_proposals)} open proposals, median time to heal "
        f"{_minutes(data.median_heal_ns)}",
        "",
        "What works (Beta posterior per anomaly kind and strategy):",
    ]
    rows = strategy_rows(data)
    out += (
        table(["kind", "strategy", "held", "failed", "expected"], rows)
        if rows
        else ["  (no outcomes yet)"]
    )
    out += ["", "Applied fixes:"]
    rows = fix_rows(data)
    out += (
        table(["patch", "kind", "strategy", "outcome", "timing", "errors", "runs", "healed"], rows)
        if rows
        else ["  (none found in git history yet)"]
    )
    out += ["", "Open proposals:"]
    rows = proposal_rows(data)
    out += table(["patch", "mode", "branch", "pull request"], rows) if rows else ["  (none)"]
    if data.hotspots:
        out += ["", "Hotspots (regressed in several runs):"]
        out += table(["where", "runs"], [[w, str(n)] for w, n in data.hotspots])
    return out


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return ["_None yet._"]
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(r) + " |" for r in esc),
    ]


def markdown(data: ReportData) -> str:
    out = [
        f"# selfheal report: {data.project}",
        "",
        f"{data.anomaly_total} anomalies in {len(data.runs)} runs; {len(data.fixes)} applied "
        f"fixes; {len(data.open_proposals)} open proposals; median time to heal "
        f"{_minutes(data.median_heal_ns)}.",
        "",
        "## Strategies",
        "",
        *_md_table(["kind", "strategy", "held", "failed", "expected"], strategy_rows(data)),
        "",
        "## Applied fixes",
        "",
        *_md_table(
            ["patch", "kind", "strategy", "outcome", "timing", "errors", "runs", "healed"],
            fix_rows(data),
        ),
        "",
        "## Timing of healed subjects",
        "",
        *_md_table(
            ["subject", "strategy", "before ms", "after ms"],
            [
                [f"`{t.subject}`", t.strategy, f"{t.before_ms:.1f}", f"{t.after_ms:.1f}"]
                for t in data.timings
            ],
        ),
        "",
        "## Anomalies per run",
        "",
        *_md_table(
            ["run", "anomalies"],
            [
                [str(r.run_id), ", ".join(f"{k} {n}" for k, n in sorted(r.by_kind.items())) or "0"]
                for r in data.runs
            ],
        ),
        "",
        "## Open proposals",
        "",
        *_md_table(["patch", "mode", "branch", "pull request"], proposal_rows(data)),
        "",
        "## Hotspots",
        "",
        *_md_table(["where", "runs"], [[f"`{w}`", str(n)] for w, n in data.hotspots]),
    ]
    return "\n".join(out) + "\n"
