"""Pure judgement of a fix: before/after metrics, improvement, success, hotspots, insights."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.phases.learning.model import StrategyStats
from agent.phases.learning.observe import Sample
from agent.records import Anomaly, AnomalyKind, CodeLocation, Diagnosis

PENDING, SUCCESS, FAILURE = "pending", "success", "failure"


@dataclass(frozen=True)
class Verdict:
    outcome: str  # pending | success | failure
    reasons: tuple[str, ...]
    healed_ns: int = 0  # start of the first later run in which the anomaly was gone


def _median(values: Iterable[float]) -> float | None:
    vals = list(values)
    return statistics.median(vals) if vals else None


def summarise(samples: Sequence[Sample]) -> dict[str, float]:
    """Median duration, failure rate, new-failure count, coverage and error rate of samples."""
    out: dict[str, float] = {"runs": float(len(samples))}
    seen = [s for s in samples if s.subject_seen]
    ms = _median(s.subject_ns / 1e6 for s in seen if s.subject_ns is not None)
    if ms is not None:
        out["duration_ms"] = ms
    if seen:
        out["failure_rate"] = sum(s.subject_failed for s in seen) / len(seen)
    if samples and any(s.tests for s in samples):
        out["failing_tests"] = float(len(samples[-1].failing))
    covs = [s.coverage for s in samples if s.coverage is not None]
    if covs:
        out["coverage"] = covs[-1]
    rates = [s.error_rate for s in samples if s.error_rate is not None]
    if rates:
        out["error_rate"] = statistics.fmean(rates)
    return out


def compare(
    before: Sequence[Sample], baseline: Sequence[Sample], after: Sequence[Sample]
) -> tuple[dict[str, float], dict[str, float]]:
    b = summarise(before)
    base_ms = _median(s.subject_ns / 1e6 for s in baseline if s.subject_ns is not None)
    if base_ms is not None:
        b["baseline_ms"] = base_ms
    covs = [s.coverage for s in baseline if s.coverage is not None]
    if covs:
        b["baseline_coverage"] = covs[0]  # the newest green run's
    return b, summarise(after)


def improvement(before: dict[str, float], after: dict[str, float]) -> tuple[float, float, float]:
    """(timing, error, coverage) improvement: relative time saved, drop in failure or error
    rate, coverage gained in percentage points; 0 where a side is unknown."""
    perf = 0.0
    if before.get("duration_ms") and "duration_ms" in after:
        perf = (before["duration_ms"] - after["duration_ms"]) / before["duration_ms"]
    err_key = "failure_rate" if "failure_rate" in before else "error_rate"
    err = before.get(err_key, 0.0) - after.get(err_key, 0.0) if err_key in after else 0.0
    cov = (
        after["coverage"] - before["coverage"]
        if "coverage" in before and "coverage" in after
        else 0.0
    )
    return perf, err, cov


def _gone(
    kind: AnomalyKind,
    before: dict[str, float],
    after: Sequence[Sample],
    perf_ratio: float,
    floor_ms: float,
) -> tuple[bool, str]:
    seen = [s for s in after if s.subject_seen]
    if not seen:
        return False, "the subject was not seen in any later run"
    if any(s.subject_failed for s in seen):
        n = sum(s.subject_failed for s in seen)
        return False, f"the subject still failed in {n} of {len(seen)} later runs"
    if kind is AnomalyKind.PERFORMANCE:
        now = _median(s.subject_ns / 1e6 for s in seen if s.subject_ns is not None)
        ref = before.get("baseline_ms")
        # As in detection: still slow only past the ratio AND the absolute noise floor.
        limit = (
            max(ref * perf_ratio, ref + floor_ms)
            if ref
            else before.get("duration_ms", 0.0) / perf_ratio
        )
        if now is None or now > limit:
            return False, f"still slow: {now or 0:.1f} ms against a limit of {limit:.1f} ms"
    if kind is AnomalyKind.COVERAGE:
        ref = before.get("baseline_coverage", before.get("coverage"))
        cov = [s.coverage for s in seen if s.coverage is not None]
        if ref is not None and cov and cov[-1] < ref:
            return False, f"coverage {cov[-1]:.1f}% still below {ref:.1f}%"
    return True, "the anomaly is gone"


def assess(
    anomaly: Anomaly,
    before: Sequence[Sample],
    before_summary: dict[str, float],
    after: Sequence[Sample],
    *,
    present: bool,
    perf_ratio: float,
    floor_ms: float = 0.0,
) -> Verdict:
    """Success = the anomaly is gone in later runs and no test that passed before fails now."""
    if not present:
        return Verdict(FAILURE, ("the fix is no longer in HEAD (reverted or overwritten)",))
    if not after:
        return Verdict(PENDING, ("no test run or telemetry since the fix landed",))
    gone, why = _gone(anomaly.kind, before_summary, after, perf_ratio, floor_ms)
    if not gone and "not seen" in why:
        return Verdict(PENDING, (why,))
    failing_before = before[-1].failing if before else frozenset()
    new = sorted(after[-1].failing - failing_before - {anomaly.subject, *anomaly.tests})
    reasons = [why]
    if new:
        reasons.append(f"newly failing since the fix: {', '.join(new[:5])}")
    if not gone or new:
        return Verdict(FAILURE, tuple(reasons))
    healed = next((s.started_ns for s in after if s.subject_seen and not s.subject_failed), 0)
    return Verdict(SUCCESS, tuple(reasons), healed)


def _where(loc: CodeLocation) -> str:
    if not loc.file:
        return ""
    return f"{loc.file}:{loc.function}" if loc.function else loc.file


def hotspots(
    anomalies: Iterable[Anomaly], diagnoses: Iterable[Diagnosis] = (), minimum: int = 2
) -> list[tuple[str, int]]:
    """Code that regressed in at least `minimum` separate episodes.

    A place is the diagnosed root cause of the anomaly's subject when there is one (the code,
    not the test that noticed), else the anomaly's own location. An anomaly whose baseline is
    the commit of an earlier anomaly on the same subject is that regression still going on,
    not a new one.
    """
    cause = {d.anomaly_id: _where(d.root_causes[0].location) for d in diagnoses if d.root_causes}
    ordered = sorted(anomalies, key=lambda a: (a.run_id, a.detected_ns))
    by_subject: dict[str, str] = {}
    for a in ordered:
        if cause.get(a.id):
            by_subject.setdefault(a.subject, cause[a.id])
    episodes: Counter[str] = Counter()
    seen_commits: dict[str, set[str]] = {}
    for a in ordered:
        where = by_subject.get(a.subject) or _where(a.location)
        earlier = seen_commits.setdefault(a.subject, set())
        ongoing = bool(a.baseline_commit) and a.baseline_commit in earlier
        earlier.add(a.commit)
        if where and not ongoing:
            episodes[where] += 1
    return [(k, n) for k, n in episodes.most_common() if n >= minimum]


def insight_lines(
    stats: Sequence[StrategyStats],
    spots: Sequence[tuple[str, int]],
    heal_ns: Sequence[int],
) -> list[str]:
    """What works, what recurs, how long healing takes, in a few sentences."""
    lines = []
    for row in stats[:5]:
        lines.append(
            f"{row.strategy} on {row.anomaly_kind} anomalies: {row.successes:g} held, "
            f"{row.failures:g} did not (expected success {row.mean:.0%})"
        )
    for where, n in spots[:5]:
        lines.append(f"hotspot: {where} regressed in {n} runs")
    if heal_ns:
        lines.append(
            f"median time to heal {statistics.median(heal_ns) / 60e9:.1f} min "
            f"over {len(heal_ns)} fixes"
        )
    return lines
