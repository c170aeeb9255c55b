"""Changes in what a test's instrumented code calls, and order-dependent failures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agent import stats
from agent.config import Config
from agent.phases.anomaly.common import anomaly_id
from agent.phases.anomaly.errors import ORDER, classify, newly_failing
from agent.phases.anomaly.model import PASSED, AnomalyBaton, PastResult, TestObservation
from agent.records import Anomaly, AnomalyKind, CodeLocation, Evidence, Severity

SURGE_RATIO = 2.0  # a call count that at least doubled ...
SURGE_MIN_EXTRA = 3  # ... by at least this many calls is the N+1 pattern


def stable_children(past: Sequence[PastResult]) -> Mapping[str, int] | None:
    """The child-call counts of earlier passing runs, if they agree (else the test varies)."""
    passing = [p.children for p in past if p.outcome == PASSED][:3]
    if not passing or not passing[0]:
        return None
    if any(dict(c) != dict(passing[0]) for c in passing[1:]):
        return None
    return passing[0]


def call_changes(
    before: Mapping[str, int], now: Mapping[str, int]
) -> list[tuple[str, str, Evidence]]:
    """(subtype, operation, evidence) for every new, vanished or surging child operation."""
    changes: list[tuple[str, str, Evidence]] = []
    for op in sorted(set(before) | set(now)):
        old, new = before.get(op, 0), now.get(op, 0)
        if old == 0:
            changes.append(("new_call", op, {"operation": op, "calls_now": new}))
        elif new == 0:
            changes.append(("missing_call", op, {"operation": op, "calls_before": old}))
        elif new >= old * SURGE_RATIO and new - old >= SURGE_MIN_EXTRA:
            changes.append(
                (
                    "n_plus_one",
                    op,
                    {
                        "operation": op,
                        "calls_before": old,
                        "calls_now": new,
                        "ratio": round(new / old, 3),
                    },
                )
            )
    return changes


def detect_call_changes(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    found = []
    for obs in baton.current:
        past = baton.history.get(obs.nodeid, ())
        if obs.outcome != PASSED or not (obs.children or (past and past[0].children)):
            continue  # not instrumented, now or before
        before = stable_children(past)
        if before is None:
            continue
        for subtype, op, evidence in call_changes(before, obs.children):
            found.append(_call_anomaly(baton, obs, subtype, op, evidence))
    return found


def _call_anomaly(
    baton: AnomalyBaton, obs: TestObservation, subtype: str, op: str, evidence: Evidence
) -> Anomaly:
    req = baton.request
    if subtype == "n_plus_one":
        severity = stats.severity_for_ratio(float(evidence["ratio"]))
        text = (
            f"{obs.nodeid}: {op} called {evidence['calls_now']} times, "
            f"was {evidence['calls_before']} (N+1 pattern)"
        )
    elif subtype == "new_call":
        severity, text = Severity.LOW, f"{obs.nodeid}: new call to {op}"
    else:
        severity, text = Severity.MEDIUM, f"{obs.nodeid}: no longer calls {op}"
    return Anomaly(
        id=anomaly_id(req.run_id, AnomalyKind.BEHAVIORAL, subtype, f"{obs.nodeid}|{op}"),
        kind=AnomalyKind.BEHAVIORAL,
        subtype=subtype,
        severity=severity,
        confidence=0.9,
        subject=obs.nodeid,
        description=text,
        detected_ns=req.detected_ns,
        run_id=req.run_id,
        baseline_run_id=baton.baseline_runs[0] if baton.baseline_runs else 0,
        commit=req.commit,
        baseline_commit=baton.baseline_commit,
        location=CodeLocation(
            file=obs.file, function=obs.nodeid.rsplit("::", 1)[-1], line=obs.line
        ),
        tests=(obs.nodeid,),
        evidence=evidence,
    )


def detect_order_dependence(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    """Fails in the suite, passes alone every time, fails again after its predecessors."""
    found = []
    req = baton.request
    for obs in baton.current:
        past = baton.history.get(obs.nodeid, ())
        if not newly_failing(obs, past) or classify(obs, past, baton) != ORDER:
            continue
        found.append(
            Anomaly(
                id=anomaly_id(req.run_id, AnomalyKind.BEHAVIORAL, "order_dependent", obs.nodeid),
                kind=AnomalyKind.BEHAVIORAL,
                subtype="order_dependent",
                severity=Severity.HIGH,
                confidence=0.9,
                subject=obs.nodeid,
                description=(
                    f"{obs.nodeid} passes alone but fails after the tests that ran before it"
                ),
                detected_ns=req.detected_ns,
                run_id=req.run_id,
                commit=req.commit,
                location=CodeLocation(file=obs.file, line=obs.line),
                tests=(obs.nodeid,),
                evidence={
                    "alone": ",".join(baton.confirmation.alone.get(obs.nodeid, ())),
                    "after_predecessors": baton.confirmation.in_order.get(obs.nodeid, ""),
                    "signature": obs.signature,
                },
            )
        )
    return found
