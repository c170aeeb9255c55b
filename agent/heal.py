"""Healing: diagnosis, fix generation and the validation gate for each anomaly, in a budget."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import SelfHealError
from agent.records import Anomaly, AnomalyKind, Deployment, Diagnosis, Patch, ValidationResult

if TYPE_CHECKING:
    from agent.conductor import Conductor
    from agent.phases.diagnosis import DiagnosisBaton
    from agent.phases.fix import Candidate, FixBaton
    from agent.phases.fix.quickcheck import FastCheck
    from agent.phases.validation import Worktree

PATCH_DIR = "patches"
EXTRA_AFTER_FIRST = 5  # candidates still tried after the first validated patch, for ranking
MIN_STEP_S = 2.0  # no new gate run starts with less than this left
DIAGNOSIS_SHARE = 0.6  # of an anomaly's time, at most this much for diagnosis: fixes need time
# Cheap kinds first: a new failure is usually diagnosed and gated in seconds, a slowdown needs
# repeated timings at two commits. Each anomaly's share is what is left divided by the number
# still to go, so time a cheap one does not use flows to the expensive ones after it, and no
# diagnosis starves the anomalies behind it.
COST_RANK = {
    AnomalyKind.ERROR: 0,
    AnomalyKind.BEHAVIORAL: 1,
    AnomalyKind.COVERAGE: 2,
    AnomalyKind.PERFORMANCE: 3,
}


@dataclass(frozen=True)
class Validated:
    patch: Patch
    result: ValidationResult
    success_rate: float  # learned success of the patch's strategy for this anomaly kind

    def rank_key(self) -> tuple[bool, int, float]:
        return (not self.result.passed, self.patch.size, -self.success_rate)


@dataclass(frozen=True)
class AnomalyOutcome:
    anomaly: Anomaly
    diagnosis: Diagnosis | None = None
    best: Validated | None = None
    validated: tuple[Validated, ...] = ()
    path: Path | None = None  # where the best patch was written
    candidates: int = 0
    tried: int = 0
    reason: str = ""  # why there is no validated patch
    elapsed_s: float = 0.0
    deployment: Deployment | None = None  # how the best patch was delivered (phase 6)


@dataclass(frozen=True)
class HealOutcome:
    results: tuple[AnomalyOutcome, ...] = ()
    elapsed_s: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def healed(self) -> int:
        return sum(1 for r in self.results if r.best is not None)

    def lines(self, root: Path | None = None) -> list[str]:
        """The summary: the best validated patch per anomaly, or why there is none."""
        out = []
        for r in self.results:
            subject = r.anomaly.subject
            if r.best is not None and r.path is not None:
                where = _relative(r.path, root)
                out.append(
                    f"healed {subject}: {r.best.patch.strategy} patch "
                    f"({r.best.patch.size} changed lines, {r.best.patch.description}) -> {where}"
                )
                dep = r.deployment
                if dep is not None and dep.branch:
                    out.append(f"  proposed on branch {dep.branch} ({dep.status.value})")
            else:
                out.append(f"not healed {subject}: {r.reason}")
        return out


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


Progress = Callable[[str], None]


def heal(
    conductor: Conductor,
    anomalies: Sequence[Anomaly],
    budget_s: float,
    progress: Progress | None = None,
) -> HealOutcome:
    """Diagnose, fix and validate each anomaly within `budget_s` seconds: the cheaper kinds
    first, then the most severe; each gets an equal share of what is left."""
    say = progress or (lambda _m: None)
    started = time.monotonic()
    deadline = started + max(budget_s, 0.0)
    order = schedule(anomalies)
    results = []
    for i, anomaly in enumerate(order):
        left = deadline - time.monotonic()
        if left < MIN_STEP_S:
            results.append(AnomalyOutcome(anomaly, reason="the healing budget ran out"))
            continue
        share = time.monotonic() + left / (len(order) - i)
        reused = _reuse(conductor, anomaly, results, share, say)
        results.append(reused or heal_one(conductor, anomaly, share, say))
    return HealOutcome(tuple(results), time.monotonic() - started)


def schedule(anomalies: Sequence[Anomaly]) -> list[Anomaly]:
    """Healing order: cheap kinds first, then by severity and confidence."""
    return sorted(
        anomalies,
        key=lambda a: (COST_RANK.get(a.kind, 1), -a.severity.rank, -a.confidence, a.id),
    )


def _reuse(
    conductor: Conductor,
    anomaly: Anomaly,
    done: Sequence[AnomalyOutcome],
    deadline: float,
    say: Progress,
) -> AnomalyOutcome | None:
    """One cause often breaks several tests: a patch validated for an earlier anomaly of this
    run is tried on this one (fast reject, then the gate) before a new diagnosis."""
    from dataclasses import replace

    from agent.phases.validation import quick_reject

    if not anomaly.tests:
        return None
    started = time.monotonic()
    for earlier in done:
        best = earlier.best
        if best is None or anomaly.kind is not earlier.anomaly.kind:
            continue
        quick = quick_reject(
            conductor.config,
            best.patch.diff,
            anomaly.tests,
            base_commit=best.patch.base_commit,
            timeout_s=_step(deadline, 60.0),
            patch_id=best.patch.id,
        )
        if not quick.passed:
            continue
        say(
            f"selfheal: {best.patch.id} (made for {earlier.anomaly.subject}) also fixes "
            f"{anomaly.subject}; running the gate"
        )
        result = _gate_for(conductor, anomaly, (), best.patch, deadline)
        if result.passed:
            validated = replace(best, result=result)
            return AnomalyOutcome(
                anomaly,
                earlier.diagnosis,
                validated,
                (validated,),
                earlier.path,
                1,
                1,
                "",
                time.monotonic() - started,
            )
    return None


def heal_one(
    conductor: Conductor, anomaly: Anomaly, deadline: float, say: Progress
) -> AnomalyOutcome:
    """The three phases for one anomaly; every failure becomes an honest reason."""
    from agent.phases.diagnosis import diagnose_baton
    from agent.phases.fix import generate

    started = time.monotonic()
    if anomaly.subtype == "flaky":
        # Different outcomes on the same code: no code change is proven by one more green run.
        return AnomalyOutcome(anomaly, reason="flaky tests are reported, not patched")
    say(f"selfheal: diagnosing {anomaly.subject} ({anomaly.kind.value}/{anomaly.subtype})")
    try:
        # Diagnosis adapts its timings and bisection to its deadline; capping it leaves the
        # fixes and the gate their part of this anomaly's share.
        dbaton = diagnose_baton(
            conductor, anomaly, started + DIAGNOSIS_SHARE * (deadline - started)
        )
        diagnosis = dbaton.diagnosis
        if diagnosis is None:
            raise SelfHealError("diagnosis produced nothing")
        fbaton = generate(conductor, anomaly, diagnosis, dbaton.codebase, deadline=deadline)
    except SelfHealError as exc:
        return AnomalyOutcome(anomaly, reason=f"stopped: {exc}", elapsed_s=_since(started))
    outcome = _search(conductor, anomaly, dbaton=dbaton, fbaton=fbaton, deadline=deadline, say=say)
    return _finish(conductor, outcome, _since(started), say)


def _since(started: float) -> float:
    return time.monotonic() - started


def _search(
    conductor: Conductor,
    anomaly: Anomaly,
    *,
    dbaton: DiagnosisBaton,
    fbaton: FixBaton,
    deadline: float,
    say: Progress,
) -> AnomalyOutcome:
    """Quick-reject each code patch on the anomaly's tests, then run the gate on survivors."""
    from agent.phases.fix import code_patches
    from agent.phases.validation import Worktree, quick_reject

    diagnosis = dbaton.diagnosis
    assert diagnosis is not None
    pairs = code_patches(fbaton)
    if not pairs:
        return AnomalyOutcome(anomaly, diagnosis, reason=_no_candidates(dbaton))
    notes = "; ".join(dbaton.notes)
    if anomaly.kind is AnomalyKind.ERROR and "does not reproduce" in notes:
        return AnomalyOutcome(anomaly, diagnosis, candidates=len(pairs), reason=notes)
    config = conductor.config
    started = time.monotonic()
    validated: list[Validated] = []
    rejected = gate_failed = tried = 0
    last_gate = ""
    repo = Path(dbaton.codebase.root) if dbaton.codebase else config.root
    with Worktree(repo, fbaton.base_commit, "quick") as wt:
        fast = _fast_check(wt, anomaly, dbaton, deadline)
        for _cand, patch in pairs:
            if time.monotonic() > deadline - MIN_STEP_S:
                break
            if validated and (
                tried >= _first_index(validated, pairs) + EXTRA_AFTER_FIRST
                or patch.size >= validated[0].patch.size
                or time.monotonic() > (started + deadline) / 2
            ):
                # After a first validated patch only strictly smaller ones can rank above it,
                # and only while half of this anomaly's budget is left.
                continue
            tried += 1
            if fast is not None:
                survived = fast.passes(patch.diff, _step(deadline, 60.0))
            else:
                survived = quick_reject(
                    config,
                    patch.diff,
                    _own_tests(anomaly, patch),
                    worktree=wt,
                    base_commit=fbaton.base_commit,
                    timeout_s=_step(deadline, 60.0),
                    patch_id=patch.id,
                ).passed
            if not survived:
                rejected += 1
                continue
            say(
                f"selfheal: candidate {tried}/{len(pairs)} ({patch.strategy}: "
                f"{patch.description}) passes the failing tests; running the gate"
            )
            result = _gate(conductor, anomaly, dbaton, patch, deadline)
            if result.passed:
                validated.append(Validated(patch, result, _success(dbaton, patch.strategy)))
                say(f"selfheal: validated {patch.id} ({patch.strategy})")
            else:
                gate_failed += 1
                last_gate = "; ".join(result.reasons[:2])
    validated.extend(
        _follow_ups(
            conductor,
            anomaly,
            dbaton=dbaton,
            fbaton=fbaton,
            validated=validated,
            deadline=deadline,
            say=say,
        )
    )
    validated.sort(key=Validated.rank_key)
    reason = "" if validated else _why(len(pairs), tried, rejected, gate_failed, last_gate)
    return AnomalyOutcome(
        anomaly,
        diagnosis,
        validated[0] if validated else None,
        tuple(validated),
        None,
        len(pairs),
        tried,
        reason,
    )


def _fast_check(
    wt: Worktree, anomaly: Anomaly, dbaton: DiagnosisBaton, deadline: float
) -> FastCheck | None:
    """The plugin-free early reject for failing tests, when it behaves like the real run."""
    from agent.phases.fix.quickcheck import FastCheck

    if anomaly.kind is not AnomalyKind.ERROR:
        return None  # timings and new tests need the real setting
    return FastCheck.calibrate(wt, anomaly.tests, dbaton.codebase, _step(deadline, 60.0))


def _own_tests(anomaly: Anomaly, patch: Patch) -> tuple[str, ...]:
    """The anomaly's tests; for a test patch closing a coverage gap, the tests it adds."""
    if anomaly.kind is AnomalyKind.COVERAGE:
        return tuple(f for f in patch.files if f.rsplit("/", 1)[-1].startswith("test"))
    return anomaly.tests


def _first_index(validated: list[Validated], pairs: list[tuple[Candidate, Patch]]) -> int:
    ids = [p.id for _, p in pairs]
    return ids.index(validated[0].patch.id) + 1


def _step(deadline: float, cap: float) -> float:
    return max(1.0, min(cap, deadline - time.monotonic()))


def _gate(
    conductor: Conductor, anomaly: Anomaly, dbaton: DiagnosisBaton, patch: Patch, deadline: float
) -> ValidationResult:
    base = dbaton.codebase.durations_base_ns if dbaton.codebase else ()
    return _gate_for(conductor, anomaly, base, patch, deadline)


def _gate_for(
    conductor: Conductor,
    anomaly: Anomaly,
    base: Sequence[int],
    patch: Patch,
    deadline: float,
) -> ValidationResult:
    """The validation gate on one patch, with the baseline timings of a slow test."""
    from agent.phases.validation import ValidationRequest, validate

    config = conductor.config
    request = ValidationRequest(
        patch=patch,
        anomaly=anomaly,
        selection=config.validation_selection,
        repeats=config.validation_repeats,
        timeout_s=_step(deadline, config.validation_timeout_s),
        baseline_timing_ns=tuple(base) if anomaly.kind is AnomalyKind.PERFORMANCE else (),
        tests=_own_tests(anomaly, patch) if anomaly.kind is AnomalyKind.COVERAGE else (),
    )
    return validate(conductor, request, deadline)


def _success(dbaton: DiagnosisBaton, strategy: str) -> float:
    from agent.phases.diagnosis.recommend import strategy_success

    anomaly = dbaton.anomaly
    kind = anomaly.kind if anomaly else AnomalyKind.ERROR
    return strategy_success(dbaton.learned, kind, strategy)


def _follow_ups(
    conductor: Conductor,
    anomaly: Anomaly,
    *,
    dbaton: DiagnosisBaton,
    fbaton: FixBaton,
    validated: list[Validated],
    deadline: float,
    say: Progress,
) -> list[Validated]:
    """The best code patch with a regression test, and with its stale docstrings refreshed."""
    from agent.phases.fix.beats import follow_up_patches

    if not validated or time.monotonic() > deadline - MIN_STEP_S:
        return []
    best = min(validated, key=Validated.rank_key).patch
    extra = []
    for patch in follow_up_patches(conductor, fbaton, best):
        if time.monotonic() > deadline - MIN_STEP_S:
            break
        result = _gate(conductor, anomaly, dbaton, patch, deadline)
        if result.passed:
            say(f"selfheal: validated {patch.id} ({patch.strategy}: {patch.description})")
            extra.append(Validated(patch, result, _success(dbaton, patch.strategy)))
    return extra


def _no_candidates(dbaton: DiagnosisBaton) -> str:
    d = dbaton.diagnosis
    where = "no suspicious lines" if d is None or not d.root_causes else "no strategy applied"
    notes = f" ({'; '.join(dbaton.notes)})" if dbaton.notes else ""
    return f"no candidate patch: {where}{notes}"


def _why(total: int, tried: int, rejected: int, gate_failed: int, last_gate: str) -> str:
    parts = [f"{tried} of {total} candidates tried"]
    if rejected:
        parts.append(f"{rejected} still failed the anomaly's tests")
    if gate_failed:
        parts.append(f"{gate_failed} failed the gate ({last_gate})")
    if tried < total:
        parts.append("the budget ran out before the rest")
    return "no validated patch: " + ", ".join(parts)


def _finish(
    conductor: Conductor, outcome: AnomalyOutcome, elapsed: float, say: Progress
) -> AnomalyOutcome:
    from dataclasses import replace

    if outcome.best is None:
        say(f"selfheal: {outcome.anomaly.subject}: {outcome.reason}")
        return replace(outcome, elapsed_s=elapsed)
    path = write_patch(conductor.config.selfheal_dir, outcome.best.patch)
    say(f"selfheal: best patch for {outcome.anomaly.subject} written to {path}")
    delivered = _deliver(conductor, outcome, say)
    return replace(outcome, path=path, elapsed_s=elapsed, deployment=delivered)


def _deliver(conductor: Conductor, outcome: AnomalyOutcome, say: Progress) -> Deployment | None:
    """Phase 6 for the best validated patch, in the configured mode (default: propose)."""
    from agent.phases.deployment import DeployRequest, deliver

    assert outcome.best is not None
    request = DeployRequest(
        patch=outcome.best.patch,
        validation=outcome.best.result,
        anomaly=outcome.anomaly,
        diagnosis=outcome.diagnosis,
        run_id=outcome.anomaly.run_id,
        revalidate=_revalidator(conductor, outcome.anomaly),
    )
    try:
        return deliver(conductor, request).deployment()
    except SelfHealError as exc:  # delivery trouble never loses the validated patch
        say(f"selfheal: delivery of {outcome.best.patch.id} failed: {exc}")
        return None


def _revalidator(
    conductor: Conductor, anomaly: Anomaly
) -> Callable[[Patch, str], ValidationResult]:
    """For `merge`: when the target moved since validation, prove the patch again on it."""

    def revalidate(patch: Patch, target: str) -> ValidationResult:
        from dataclasses import replace

        from agent.phases.validation import ValidationRequest, validate

        config = conductor.config
        request = ValidationRequest(
            patch=replace(patch, base_commit=target),
            anomaly=anomaly,
            selection=config.validation_selection,
            repeats=config.validation_repeats,
            timeout_s=config.validation_timeout_s,
        )
        return validate(conductor, request)

    return revalidate


def write_patch(selfheal_dir: Path, patch: Patch) -> Path:
    """`.selfheal/patches/<id>.diff`, ready for `git apply`."""
    directory = selfheal_dir / PATCH_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{patch.id}.diff"
    path.write_text(patch.diff, encoding="utf-8")
    return path
