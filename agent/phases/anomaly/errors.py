"""New test failures grouped by exception signature, changed signatures, and flaky tests."""

from __future__ import annotations

from collections.abc import Sequence

from agent.config import Config
from agent.phases.anomaly.common import anomaly_id
from agent.phases.anomaly.model import (
    FAILING,
    PASSED,
    XPASSED,
    AnomalyBaton,
    Confirmation,
    DetectRequest,
    PastResult,
    TestObservation,
)
from agent.records import Anomaly, AnomalyKind, CodeLocation, Severity

CONFIRM_RUNS = 3  # a new failure is re-run alone this many times
NEW, FLAKY, ORDER, UNCONFIRMED = "new_failure", "flaky", "order_dependent", "unconfirmed"


def newly_failing(obs: TestObservation, past: Sequence[PastResult]) -> bool:
    """Fails now and passed the last time it ran in a comparable environment."""
    return obs.outcome in FAILING and bool(past) and past[0].outcome in (PASSED, XPASSED)


def flaky_by_history(obs: TestObservation, past: Sequence[PastResult], req: DetectRequest) -> bool:
    """Both passed and failed on this very commit with a clean tree."""
    if not req.commit or req.dirty:
        return False
    same = [p.outcome for p in past if p.commit == req.commit and not p.dirty]
    outcomes = {obs.outcome, *same}
    return bool(outcomes & FAILING) and bool(outcomes & {PASSED, XPASSED})


def classify(obs: TestObservation, past: Sequence[PastResult], baton: AnomalyBaton) -> str:
    """What a failure that is new against the baseline turns out to be after re-running it."""
    if flaky_by_history(obs, past, baton.request):
        return FLAKY
    return classify_reruns(obs.nodeid, baton.confirmation)


def classify_reruns(nodeid: str, conf: Confirmation) -> str:
    alone = conf.alone.get(nodeid, ())
    if not alone:
        return UNCONFIRMED
    failed = sum(o in FAILING for o in alone)
    if failed == len(alone):
        return NEW
    if failed:
        return FLAKY
    # Passes alone every time: order dependence if it fails again after its predecessors.
    return ORDER if conf.in_order.get(nodeid, "") in FAILING else FLAKY


def needs_confirmation(
    current: Sequence[TestObservation],
    history: dict[str, tuple[PastResult, ...]],
    req: DetectRequest,
) -> list[str]:
    return [
        o.nodeid
        for o in current
        if newly_failing(o, history.get(o.nodeid, ()))
        and not flaky_by_history(o, history.get(o.nodeid, ()), req)
    ]


def detect_new_failures(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    """One anomaly per exception signature, naming every test that now fails with it."""
    groups: dict[str, list[tuple[TestObservation, str]]] = {}
    for obs in baton.current:
        past = baton.history.get(obs.nodeid, ())
        if not newly_failing(obs, past):
            continue
        verdict = classify(obs, past, baton)
        if verdict in (NEW, UNCONFIRMED):
            groups.setdefault(obs.signature or f"failure@{obs.nodeid}", []).append((obs, verdict))
    return [_failure_anomaly(baton, sig, members) for sig, members in groups.items()]


def _failure_anomaly(
    baton: AnomalyBaton, signature: str, members: list[tuple[TestObservation, str]]
) -> Anomaly:
    req = baton.request
    first = members[0][0]
    confirmed = sum(v == NEW for _, v in members)
    tests = tuple(sorted(o.nodeid for o, _ in members))
    exc_type, _, frame = signature.partition("@")
    file, _, function = frame.rpartition(":")
    return Anomaly(
        id=anomaly_id(req.run_id, AnomalyKind.ERROR, "new_failure", signature),
        kind=AnomalyKind.ERROR,
        subtype="new_failure",
        severity=Severity.CRITICAL if len(tests) >= 3 else Severity.HIGH,
        confidence=0.95 if confirmed == len(members) else 0.75,
        subject=signature,
        description=(
            f"{len(tests)} test(s) newly fail with {exc_type or 'a failure'}"
            f"{f' in {function}' if function else ''}: {', '.join(tests[:3])}"
            f"{' …' if len(tests) > 3 else ''}"
            f"{f' — {first.message.splitlines()[0][:120]}' if first.message else ''}"
        ),
        detected_ns=req.detected_ns,
        run_id=req.run_id,
        baseline_run_id=baton.baseline_runs[0] if baton.baseline_runs else 0,
        commit=req.commit,
        baseline_commit=baton.baseline_commit,
        location=CodeLocation(file=file, function=function),
        tests=tests,
        evidence={
            "tests": len(tests),
            "signature": signature,
            "exception_type": exc_type,
            "confirmed_by_rerun": confirmed,
            "rerun_alone": CONFIRM_RUNS if baton.confirmation.alone else 0,
            "message": first.message.splitlines()[0][:200] if first.message else "",
        },
    )


def detect_flaky(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    """Different outcomes on the same code: history on this clean commit, or re-runs."""
    found = []
    for obs in baton.current:
        past = baton.history.get(obs.nodeid, ())
        by_history = flaky_by_history(obs, past, baton.request)
        by_rerun = newly_failing(obs, past) and classify(obs, past, baton) == FLAKY
        if by_history or by_rerun:
            found.append(_flaky_anomaly(baton, obs, past, by_history))
    return found


def _flaky_anomaly(
    baton: AnomalyBaton, obs: TestObservation, past: Sequence[PastResult], by_history: bool
) -> Anomaly:
    req = baton.request
    same = [p.outcome for p in past if p.commit == req.commit and not p.dirty]
    alone = baton.confirmation.alone.get(obs.nodeid, ())
    outcomes = [obs.outcome, *same] if by_history else [obs.outcome, *alone]
    fails = sum(o in FAILING for o in outcomes)
    return Anomaly(
        id=anomaly_id(req.run_id, AnomalyKind.ERROR, "flaky", obs.nodeid),
        kind=AnomalyKind.ERROR,
        subtype="flaky",
        severity=Severity.LOW,
        confidence=0.9 if by_history else 0.7,
        subject=obs.nodeid,
        description=(
            f"{obs.nodeid} is flaky: {fails} failure(s) in {len(outcomes)} runs of the same code"
        ),
        detected_ns=req.detected_ns,
        run_id=req.run_id,
        commit=req.commit,
        location=CodeLocation(
            file=obs.file, function=obs.nodeid.rsplit("::", 1)[-1], line=obs.line
        ),
        tests=(obs.nodeid,),
        evidence={
            "runs": len(outcomes),
            "failures": fails,
            "source": "history on this commit" if by_history else "re-run alone",
            "outcome_now": obs.outcome,
            "signature": obs.signature,
        },
    )


def detect_new_signatures(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    """A test that kept failing, but now with a different exception signature."""
    found = []
    req = baton.request
    for obs in baton.current:
        past = baton.history.get(obs.nodeid, ())
        if obs.outcome not in FAILING or not past or past[0].outcome not in FAILING:
            continue
        before = past[0].signature
        if not obs.signature or not before or obs.signature == before:
            continue
        found.append(
            Anomaly(
                id=anomaly_id(req.run_id, AnomalyKind.ERROR, "new_signature", obs.nodeid),
                kind=AnomalyKind.ERROR,
                subtype="new_signature",
                severity=Severity.MEDIUM,
                confidence=0.8,
                subject=obs.nodeid,
                description=f"{obs.nodeid} now fails with {obs.signature} (was {before})",
                detected_ns=req.detected_ns,
                run_id=req.run_id,
                baseline_run_id=past[0].run_id,
                commit=req.commit,
                baseline_commit=past[0].commit,
                tests=(obs.nodeid,),
                evidence={"signature": obs.signature, "previous_signature": before},
            )
        )
    return found
