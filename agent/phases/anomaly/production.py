"""Production regressions: latency, N+1 and call edges, new exceptions, untested hot code."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agent import stats
from agent.config import Config
from agent.phases.anomaly.common import anomaly_id, ms
from agent.phases.anomaly.model import AnomalyBaton
from agent.records import Anomaly, AnomalyKind, CodeLocation, Evidence, Severity

MIN_SAMPLE = 5  # spans per side before an operation's latency or calls are judged
MIN_PARENTS = 5  # parent spans per side before call edges are judged
CALL_MULTIPLIER = 2.0  # median child calls per parent that count as an N+1 surge
HOT_MIN_CALLS = 10  # calls in the window that make a function "hot"
# A parent's slowdown is explained by a flagged child when the child's added time per parent
# is at least this share of the parent's added time (report the cause, not every ancestor).
EXPLAINED_SHARE = 0.5

OpKey = tuple[str, str]  # (service, operation)


@dataclass(frozen=True)
class OpSample:
    """One operation on one side of the comparison."""

    service: str
    operation: str
    version: str
    durations: tuple[int, ...]
    errors: int = 0
    signatures: Mapping[str, int] = field(default_factory=dict)
    location: CodeLocation = field(default_factory=CodeLocation)
    # child operation -> calls made by each parent span of this operation (zeros included)
    children: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    parents: int = 0  # spans of this operation that had their children in view

    @property
    def count(self) -> int:
        return len(self.durations)

    @property
    def subject(self) -> str:
        return f"{self.service}/{self.operation}"


@dataclass(frozen=True)
class ProductionFacts:
    """Current and baseline operations, and what the coverage map says about them."""

    mode: str  # "version": service.version B vs the previous version; "window": vs earlier runs
    current_label: str
    baseline_label: str
    current: Mapping[OpKey, OpSample] = field(default_factory=dict)
    baseline: Mapping[OpKey, OpSample] = field(default_factory=dict)
    baseline_run_id: int = 0
    # signature -> where the deepest project frame of its stack trace is
    signature_locations: Mapping[str, CodeLocation] = field(default_factory=dict)
    coverage_known: bool = False
    tests_by_function: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    hot_functions: Mapping[str, tuple[CodeLocation, int]] = field(default_factory=dict)


def function_key(location: CodeLocation) -> str:
    return f"{location.file}:{location.function}"


def _facts(baton: AnomalyBaton) -> ProductionFacts | None:
    facts = getattr(baton, "production", None)
    return facts if isinstance(facts, ProductionFacts) else None


def _anomaly(
    baton: AnomalyBaton,
    facts: ProductionFacts,
    kind: AnomalyKind,
    subtype: str,
    subject: str,
    *,
    severity: Severity,
    confidence: float,
    description: str,
    location: CodeLocation,
    evidence: Evidence,
) -> Anomaly:
    req = baton.request
    # Between two versions the finding is the same in every window that sees it: one id per
    # (versions, subject), so later windows update it instead of repeating it.
    run_key = 0 if facts.mode == "version" else req.run_id
    scope = f"{subject}@{facts.current_label}<{facts.baseline_label}" if not run_key else subject
    return Anomaly(
        id=anomaly_id(run_key, kind, subtype, scope),
        kind=kind,
        subtype=subtype,
        severity=severity,
        confidence=round(min(1.0, max(0.0, confidence)), 4),
        subject=subject,
        description=description,
        detected_ns=req.detected_ns,
        run_id=req.run_id,
        baseline_run_id=facts.baseline_run_id,
        commit=req.commit,
        location=location,
        tests=facts.tests_by_function.get(function_key(location), ()),
        evidence={
            "source": "production",
            "mode": facts.mode,
            "current": facts.current_label,
            "baseline": facts.baseline_label,
            **evidence,
        },
    )


# Latency ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slowdown:
    key: OpKey
    ratio: float
    growth_ns: float
    test: stats.RankTest
    p_adjusted: float


def slowdowns(facts: ProductionFacts, config: Config) -> list[Slowdown]:
    """Operations slower by effect size, floor and a Holm-corrected rank test."""
    candidates = []
    for key, cur in facts.current.items():
        base = facts.baseline.get(key)
        if base is None or cur.count < MIN_SAMPLE or base.count < MIN_SAMPLE:
            continue
        candidates.append(
            (key, cur, base, stats.mann_whitney_greater(cur.durations, base.durations))
        )
    adjusted = stats.holm_adjusted([c[3].p_value for c in candidates])
    floor_ns = config.perf_floor_ms * 1e6
    found = []
    for (key, cur, base, test), p_adj in zip(candidates, adjusted, strict=True):
        if p_adj > config.perf_alpha:
            continue
        if not stats.is_suspect(cur.durations, base.durations, config.perf_ratio, floor_ns):
            continue
        growth = stats.median(cur.durations) - stats.median(base.durations)
        ratio = stats.median_ratio(cur.durations, base.durations)
        found.append(Slowdown(key, ratio, growth, test, p_adj))
    return _without_explained(found, facts)


def _without_explained(found: list[Slowdown], facts: ProductionFacts) -> list[Slowdown]:
    """Drop a parent whose slowdown a flagged child accounts for: point at the cause."""
    flagged = {s.key: s for s in found}
    kept = []
    for slow in found:
        cur = facts.current[slow.key]
        explained = False
        for child_op, counts in cur.children.items():
            child = flagged.get((slow.key[0], child_op))
            if child is None or child.key == slow.key:
                continue
            per_parent = stats.median(counts) if counts else 0.0
            if child.growth_ns * max(per_parent, 1.0) >= EXPLAINED_SHARE * slow.growth_ns:
                explained = True
                break
        if not explained:
            kept.append(slow)
    return kept


def detect_latency(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    facts = _facts(baton)
    if facts is None:
        return []
    found = []
    for slow in slowdowns(facts, config):
        cur, base = facts.current[slow.key], facts.baseline[slow.key]
        cur_ms, base_ms = ms(stats.median(cur.durations)), ms(stats.median(base.durations))
        found.append(
            _anomaly(
                baton,
                facts,
                AnomalyKind.PERFORMANCE,
                "slowdown",
                cur.subject,
                severity=stats.severity_for_ratio(slow.ratio),
                confidence=1.0 - slow.p_adjusted,
                description=(
                    f"{cur.subject} is {slow.ratio:.2f}x slower in {facts.current_label}: median "
                    f"{cur_ms:.1f} ms over {cur.count} spans vs {base_ms:.1f} ms over "
                    f"{base.count} in {facts.baseline_label} (p={slow.p_adjusted:.3g})"
                ),
                location=cur.location,
                evidence={
                    "ratio": round(slow.ratio, 4),
                    "current_median_ms": cur_ms,
                    "baseline_median_ms": base_ms,
                    "current_p95_ms": ms(_quantile(cur.durations, 0.95)),
                    "baseline_p95_ms": ms(_quantile(base.durations, 0.95)),
                    "n_current": cur.count,
                    "n_baseline": base.count,
                    "p_value": round(slow.test.p_value, 8),
                    "p_adjusted": round(slow.p_adjusted, 8),
                    "effect": round(slow.test.effect, 4),
                    "method": slow.test.method,
                },
            )
        )
    return found


def _quantile(values: Sequence[int], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


# Errors ---------------------------------------------------------------------------------------


def fisher_greater(k_cur: int, n_cur: int, k_base: int, n_base: int) -> float:
    """One-sided Fisher exact test that the current rate exceeds the baseline rate."""
    total_k, total_n = k_cur + k_base, n_cur + n_base
    if not total_k or not n_cur:
        return 1.0
    top = min(total_k, n_cur)
    denominator = _log_comb(total_n, n_cur)
    tail = 0.0
    for k in range(k_cur, top + 1):
        tail += math.exp(
            _log_comb(total_k, k) + _log_comb(total_n - total_k, n_cur - k) - denominator
        )
    return min(1.0, tail)


def _log_comb(n: int, k: int) -> float:
    if k < 0 or k > n:
        return -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def detect_error_changes(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    """New exception signatures, and error-rate spikes no new signature explains."""
    facts = _facts(baton)
    if facts is None or not facts.baseline:
        return []
    found = []
    spikes: list[tuple[OpSample, OpSample, float]] = []
    for key, cur in facts.current.items():
        base = facts.baseline.get(key)
        known = set(base.signatures) if base is not None else set()
        new = {s: n for s, n in cur.signatures.items() if s not in known}
        for signature, count in sorted(new.items()):
            found.append(
                _new_signature(
                    baton,
                    facts,
                    cur=cur,
                    base=base,
                    signature=signature,
                    count=count,
                    config=config,
                )
            )
        if base is None or cur.errors < config.error_min_count:
            continue
        if sum(new.values()) * 2 >= cur.errors:
            continue  # the new signatures above already account for the spike
        p = fisher_greater(cur.errors, cur.count, base.errors, base.count)
        spikes.append((cur, base, p))
    found = _deepest_per_signature(found, facts)
    adjusted = stats.holm_adjusted([p for _, _, p in spikes])
    for (cur, base, _), p_adj in zip(spikes, adjusted, strict=True):
        if p_adj <= config.perf_alpha:
            found.append(_spike(baton, facts, cur, base, p_adj))
    return found


def _deepest_per_signature(found: list[Anomaly], facts: ProductionFacts) -> list[Anomaly]:
    """An exception crossing nested spans is recorded on each: report it where it was raised."""
    by_signature: dict[str, list[Anomaly]] = {}
    for anomaly in found:
        by_signature.setdefault(str(anomaly.evidence["signature"]), []).append(anomaly)
    kept = []
    for group in by_signature.values():
        ops = {str(a.evidence["operation"]) for a in group}
        for anomaly in group:
            op = str(anomaly.evidence["operation"])
            service = anomaly.subject.split("/", 1)[0]
            sample = facts.current.get((service, op))
            inner = set(sample.children) & ops if sample is not None else set()
            if not inner - {op}:
                kept.append(anomaly)
    return kept


def _new_signature(
    baton: AnomalyBaton,
    facts: ProductionFacts,
    *,
    cur: OpSample,
    base: OpSample | None,
    signature: str,
    count: int,
    config: Config,
) -> Anomaly:
    n_base = base.count if base is not None else 0
    p = fisher_greater(count, cur.count, 0, n_base)
    exc_type = signature.split("@", 1)[0]
    location = facts.signature_locations.get(signature, cur.location)
    severity = Severity.HIGH if count >= config.error_min_count else Severity.MEDIUM
    return _anomaly(
        baton,
        facts,
        AnomalyKind.ERROR,
        "new_exception",
        f"{cur.subject}#{signature}",
        severity=severity,
        confidence=1.0 - p,
        description=(
            f"new exception {exc_type} in {cur.subject} ({facts.current_label}): {count} of "
            f"{cur.count} spans, never in {n_base} spans of {facts.baseline_label}"
        ),
        location=location,
        evidence={
            "signature": signature,
            "count": count,
            "n_current": cur.count,
            "n_baseline": n_base,
            "error_rate": round(cur.errors / cur.count, 4) if cur.count else 0.0,
            "baseline_error_rate": round(base.errors / base.count, 4)
            if base and base.count
            else 0.0,
            "p_value": round(p, 8),
            "operation": cur.operation,
        },
    )


def _spike(
    baton: AnomalyBaton, facts: ProductionFacts, cur: OpSample, base: OpSample, p_adj: float
) -> Anomaly:
    rate, base_rate = cur.errors / cur.count, base.errors / base.count if base.count else 0.0
    severity = (
        Severity.CRITICAL if rate >= 0.5 else Severity.HIGH if rate >= 0.1 else Severity.MEDIUM
    )
    return _anomaly(
        baton,
        facts,
        AnomalyKind.ERROR,
        "error_rate_spike",
        cur.subject,
        severity=severity,
        confidence=1.0 - p_adj,
        description=(
            f"{cur.subject} fails in {rate:.1%} of {cur.count} spans in {facts.current_label} "
            f"vs {base_rate:.1%} of {base.count} in {facts.baseline_label} (p={p_adj:.3g})"
        ),
        location=cur.location,
        evidence={
            "errors": cur.errors,
            "n_current": cur.count,
            "baseline_errors": base.errors,
            "n_baseline": base.count,
            "error_rate": round(rate, 4),
            "baseline_error_rate": round(base_rate, 4),
            "p_adjusted": round(p_adj, 8),
        },
    )


# Calls ----------------------------------------------------------------------------------------


def call_changes(cur: OpSample, base: OpSample, alpha: float) -> list[tuple[str, str, Evidence]]:
    """(subtype, child, evidence) for N+1 surges, new and vanished child calls of one parent."""
    if cur.parents < MIN_PARENTS or base.parents < MIN_PARENTS:
        return []
    changes: list[tuple[str, str, Evidence]] = []
    for child in sorted(set(cur.children) | set(base.children)):
        now = cur.children.get(child, (0,) * cur.parents)
        before = base.children.get(child, (0,) * base.parents)
        med_now, med_before = stats.median(now), stats.median(before)
        share_now = sum(1 for c in now if c) / len(now)
        share_before = sum(1 for c in before if c) / len(before)
        evidence: Evidence = {
            "child": child,
            "median_calls": med_now,
            "baseline_median_calls": med_before,
            "share_of_parents": round(share_now, 4),
            "baseline_share_of_parents": round(share_before, 4),
            "parents": cur.parents,
            "baseline_parents": base.parents,
        }
        if share_before == 0 and share_now >= 0.5:
            changes.append(("new_call", child, evidence))
        elif share_now == 0 and share_before >= 0.9:
            changes.append(("vanished_call", child, evidence))
        elif (
            med_before >= 1
            and med_now >= CALL_MULTIPLIER * med_before
            and med_now - med_before >= 2
        ):
            test = stats.mann_whitney_greater(now, before)
            if test.p_value <= alpha:
                evidence["p_value"] = round(test.p_value, 8)
                evidence["multiplier"] = round(med_now / med_before, 3)
                changes.append(("n_plus_one", child, evidence))
    return changes


_CALL_TEXT = {
    "new_call": "{p} now calls {c} ({now:g} per request); it never did in {base}",
    "vanished_call": "{p} no longer calls {c}; it did in {base}",
    "n_plus_one": "{p} calls {c} {now:g} times per request vs {before:g} in {base} (N+1)",
}
_CALL_SEVERITY = {
    "new_call": Severity.LOW,
    "vanished_call": Severity.MEDIUM,
    "n_plus_one": Severity.HIGH,
}


def detect_call_changes(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    facts = _facts(baton)
    if facts is None:
        return []
    found = []
    for key, cur in facts.current.items():
        base = facts.baseline.get(key)
        if base is None:
            continue
        for subtype, child, evidence in call_changes(cur, base, config.perf_alpha):
            text = _CALL_TEXT[subtype].format(
                p=cur.subject,
                c=child,
                now=float(evidence["median_calls"]),
                before=float(evidence["baseline_median_calls"]),
                base=facts.baseline_label,
            )
            found.append(
                _anomaly(
                    baton,
                    facts,
                    AnomalyKind.BEHAVIORAL,
                    subtype,
                    f"{cur.subject}->{child}",
                    severity=_CALL_SEVERITY[subtype],
                    confidence=1.0 - float(evidence.get("p_value", 0.0)),
                    description=text,
                    location=cur.location,
                    evidence=evidence,
                )
            )
    return found


# Coverage -------------------------------------------------------------------------------------


def detect_untested_hot_code(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    """Functions called often in production that no test runs (needs a coverage map)."""
    facts = _facts(baton)
    if facts is None or not facts.coverage_known:
        return []
    found = []
    for key, (location, calls) in sorted(facts.hot_functions.items()):
        if calls < HOT_MIN_CALLS or facts.tests_by_function.get(key):
            continue
        found.append(
            _anomaly(
                baton,
                facts,
                AnomalyKind.COVERAGE,
                "untested_hot_code",
                key,
                severity=Severity.MEDIUM,
                confidence=1.0,
                description=(
                    f"{location.function} ({location.file}) ran {calls} times in production "
                    f"({facts.current_label}) and no test covers it"
                ),
                location=location,
                evidence={"calls": calls},
            )
        )
    return found
