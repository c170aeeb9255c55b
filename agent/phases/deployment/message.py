"""The words of a proposal: the commit message and the Markdown evidence of a PR body."""

from __future__ import annotations

from agent.records import Anomaly, Diagnosis, Patch, ValidationResult

# Trailers let learning recognise our commits after a merge, a cherry-pick or a squash.
TRAILER_PATCH = "Selfheal-Patch"
TRAILER_ANOMALY = "Selfheal-Anomaly"
TRAILER_STRATEGY = "Selfheal-Strategy"


def title(patch: Patch, anomaly: Anomaly | None) -> str:
    if anomaly is None:
        return f"selfheal: {patch.strategy} patch {patch.id[:8]}"
    what = anomaly.subtype.replace("_", " ")
    # An error anomaly's subject is an exception signature; its first test reads better.
    subject = anomaly.subject
    if "::" not in subject and "/" not in subject.split("@")[0] and anomaly.tests:
        subject = anomaly.tests[0]
    return f"selfheal: fix {what} in {_short(subject, 60)}"


def _short(subject: str, width: int = 50) -> str:
    return subject if len(subject) <= width else "…" + subject[-(width - 1) :]


def _ms(ns: float | None) -> str:
    return "?" if ns is None else f"{ns / 1e6:.1f} ms"


def _pct(fraction: float | None) -> str:
    # ValidationResult keeps coverage as a fraction of statements (0..1).
    return "?" if fraction is None else f"{100 * fraction:.1f}%"


def cause_lines(diagnosis: Diagnosis | None) -> list[str]:
    if diagnosis is None or not diagnosis.root_causes:
        return ["no diagnosis recorded"]
    lines = []
    for cause in diagnosis.root_causes[:3]:
        where = cause.location
        place = f" at {where.file}:{where.line}" if where.file else ""
        func = f" ({where.function})" if where.function else ""
        lines.append(f"{cause.description}{place}{func} [score {cause.score:.2f}]")
    if diagnosis.culprit_commit:
        lines.append(f"culprit commit {diagnosis.culprit_commit[:12]}")
    return lines


def evidence_lines(validation: ValidationResult, anomaly: Anomaly | None) -> list[str]:
    v = validation
    lines = [
        f"validation {'passed' if v.passed else 'FAILED'}: {v.tests_passed} passed, "
        f"{v.tests_failed} failed, {v.tests_skipped} skipped in {v.duration_ns / 1e9:.1f} s",
    ]
    if v.performance_before_ns is not None or v.performance_after_ns is not None:
        lines.append(f"timing {_ms(v.performance_before_ns)} -> {_ms(v.performance_after_ns)}")
    if v.coverage_before is not None or v.coverage_after is not None:
        lines.append(f"coverage {_pct(v.coverage_before)} -> {_pct(v.coverage_after)}")
    lines += [
        f"check {c.name}: {'ok' if c.passed else 'failed'} {c.reason}".rstrip() for c in v.checks
    ]
    if anomaly is not None:
        lines += [f"{k} = {val}" for k, val in sorted(anomaly.evidence.items())]
    return lines


def commit_message(
    patch: Patch,
    validation: ValidationResult,
    anomaly: Anomaly | None,
    diagnosis: Diagnosis | None,
) -> str:
    """Subject line, then anomaly, cause, strategy and evidence, then machine-readable trailers."""
    parts = [title(patch, anomaly), ""]
    if anomaly is not None:
        parts.append(
            f"Anomaly: {anomaly.kind.value}/{anomaly.subtype}, {anomaly.severity.value}, "
            f"confidence {anomaly.confidence:.2f}: {anomaly.description}"
        )
    parts.append("Cause: " + "; ".join(cause_lines(diagnosis)))
    parts.append(
        f"Strategy: {patch.strategy}" + (f" ({patch.description})" if patch.description else "")
    )
    parts.append("Evidence:")
    parts += [f"  - {line}" for line in evidence_lines(validation, anomaly)]
    parts += ["", f"{TRAILER_PATCH}: {patch.id}"]
    if anomaly is not None:
        parts.append(f"{TRAILER_ANOMALY}: {anomaly.id}")
    parts.append(f"{TRAILER_STRATEGY}: {patch.strategy}")
    return "\n".join(parts) + "\n"


def markdown_body(
    patch: Patch,
    validation: ValidationResult,
    anomaly: Anomaly | None,
    diagnosis: Diagnosis | None,
) -> str:
    """The PR/MR body: what regressed, why, what the patch does and the gate's evidence."""
    out = ["## What regressed", ""]
    if anomaly is None:
        out.append("_No anomaly record._")
    else:
        out += [
            "| kind | severity | confidence | subject |",
            "|---|---|---|---|",
            f"| {anomaly.kind.value}/{anomaly.subtype} | {anomaly.severity.value} | "
            f"{anomaly.confidence:.2f} | `{anomaly.subject}` |",
            "",
            anomaly.description,
        ]
    out += ["", "## Cause", ""] + [f"- {line}" for line in cause_lines(diagnosis)]
    out += [
        "",
        "## Fix",
        "",
        f"Strategy **{patch.strategy}**, {patch.size} changed lines in "
        + ", ".join(f"`{f}`" for f in patch.files)
        + ".",
    ]
    if patch.description:
        out += ["", patch.description]
    out += ["", "## Evidence", ""] + [f"- {line}" for line in evidence_lines(validation, anomaly)]
    out += [
        "",
        "<details><summary>Patch</summary>",
        "",
        "```diff",
        patch.diff.rstrip(),
        "```",
        "",
        "</details>",
        "",
        f"<!-- {TRAILER_PATCH}: {patch.id} -->",
    ]
    return "\n".join(out) + "\n"
