"""The selfheal summary: one dict, rendered to the terminal, to JSON and to Markdown."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def display_path(path: Path, root: Path) -> str:
    try:
        return os.path.relpath(path, root) if path.is_relative_to(root) else str(path)
    except ValueError:
        return str(path)


def summary(result: Any, info: Any, problems: list[str], coverage: str) -> dict[str, Any]:
    """Everything the summary says, as plain JSON types (the report files hold exactly this)."""
    from agent.records import to_json

    anomalies = [to_json(a) for a in result.anomalies] if result is not None else []
    return {
        "version": 1,
        "run_id": result.run_id if result is not None else 0,
        "commit": info.commit,
        "dirty": info.dirty,
        "env_key": info.env_key,
        "tests": result.tests if result is not None else 0,
        "baseline_runs": result.baseline_runs if result is not None else 0,
        "coverage": coverage,
        "anomalies": anomalies,
        "notes": list(result.notes) if result is not None else [],
        "problems": list(problems),
        "healing": _healing(result, info),
        "timings_ms": dict(result.timings_ms) if result is not None else {},
    }


def _healing(result: Any, info: Any) -> list[str]:
    """One line per anomaly: its best validated patch and where it is, or why there is none."""
    outcome = getattr(result, "heal", None)
    if outcome is None:
        return []
    root = getattr(info, "root", "")
    return list(outcome.lines(Path(root) if root else None))


def headline(data: dict[str, Any]) -> str:
    n = len(data["anomalies"])
    if not data["run_id"]:
        return "run not recorded (see the warnings above)"
    base = (
        f"compared with {data['baseline_runs']} earlier run(s)"
        if data["baseline_runs"]
        else "first recorded run here: nothing to compare with yet"
    )
    noun = "anomaly" if n == 1 else "anomalies"
    return f"run {data['run_id']}: {data['tests']} tests recorded, {base}; {n} {noun}"


def anomaly_line(a: dict[str, Any]) -> str:
    return f"{a['severity'].upper():8} {a['kind']}/{a['subtype']}: {a['description']}"


def evidence_line(a: dict[str, Any]) -> str:
    pairs = ", ".join(f"{k}={v}" for k, v in a["evidence"].items())
    return f"         confidence={a['confidence']}; {pairs}"


def terminal_lines(data: dict[str, Any], verbose: bool) -> list[str]:
    lines = [headline(data)]
    for a in data["anomalies"]:
        lines.append(anomaly_line(a))
        if verbose:
            lines.append(evidence_line(a))
            if a.get("tests") and len(a["tests"]) > 1:
                lines.append(f"         tests: {', '.join(a['tests'])}")
    lines.extend(data.get("healing", []))
    lines.extend(f"note: {n}" for n in data["notes"])
    lines.extend(f"problem: {p}" for p in data["problems"])
    return lines


def markdown(data: dict[str, Any]) -> str:
    out = ["# selfheal report", "", headline(data), ""]
    if data["commit"]:
        out += [
            f"Commit `{data['commit'][:12]}`{' (dirty)' if data['dirty'] else ''}, "
            f"environment `{data['env_key']}`.",
            "",
        ]
    for a in data["anomalies"]:
        out.append(f"## {a['severity'].upper()} {a['kind']}/{a['subtype']}: `{a['subject']}`")
        out += ["", a["description"], "", "| evidence | value |", "|---|---|"]
        out.append(f"| confidence | {a['confidence']} |")
        out += [f"| {k} | {v} |" for k, v in a["evidence"].items()]
        if a.get("tests"):
            out += ["", "Tests: " + ", ".join(f"`{t}`" for t in a["tests"])]
        out.append("")
    out += [f"- note: {n}" for n in data["notes"]]
    out += [f"- problem: {p}" for p in data["problems"]]
    return "\n".join(out).rstrip() + "\n"


def write(fmt: str, path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n" if fmt == "json" else markdown(data)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
