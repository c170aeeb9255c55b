"""Test-duration regressions: effect size AND absolute floor AND a corrected rank test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent import stats
from agent.config import Config
from agent.phases.anomaly.common import (
    MAX_RERUNS,
    MIN_BASELINE,
    Thresholds,
    anomaly_id,
    ms,
    thresholds,
)
from agent.phases.anomaly.model import (
    PASSED,
    AnomalyBaton,
    PastResult,
    TestObservation,
    traced_ns,
)
from agent.records import Anomaly, AnomalyKind, CodeLocation


@dataclass(frozen=True)
class Suspect:
    nodeid: str
    reruns: int  # confirming runs needed to reach the corrected alpha at all
    baseline: tuple[int, ...] = ()
    ratio: float = 1.25
    floor_ns: float = 0.0

    def still_slow(self, duration_ns: int) -> bool:
        """Does one more measurement still clear the screen? (a pilot run's check)"""
        return clears_screen(duration_ns, self.baseline, self.ratio, self.floor_ns)


def clears_screen(duration_ns: int, base: Sequence[int], ratio: float, floor_ns: float) -> bool:
    """One measurement is a suspect: ratio, floor, and above the test's own usual spread.

    The spread condition keeps naturally noisy tests (property-based tests, I/O) from becoming
    suspects, and costing a confirming re-run, on every green run; a steady test is judged by
    the ratio and the floor, which a real slowdown clears anyway.
    """
    return stats.is_suspect([duration_ns], base, ratio, floor_ns) and stats.beyond_noise(
        duration_ns, base
    )


def baseline_sample(past: Sequence[PastResult]) -> list[int]:
    """Call durations of earlier passing runs: failures stop early and are not comparable."""
    return [p.call_ns for p in past if p.outcome == PASSED and p.call_ns >= 0]


def traced_sample(past: Sequence[PastResult]) -> list[int]:
    """Call durations of earlier passing runs under coverage tracing."""
    found = (traced_ns(p.call_ns) for p in past if p.outcome == PASSED)
    return [ns for ns in found if ns is not None]


def screen(
    current: Sequence[TestObservation],
    history: Mapping[str, Sequence[PastResult]],
    config: Config,
    *,
    timed: bool = True,
) -> list[Suspect]:
    """Passing tests whose single duration already clears the screen (see `clears_screen`)."""
    flagged = _screened(current, history, config, timed)
    family_alpha = config.perf_alpha / max(1, len(flagged))
    cap = max(config.perf_reruns, MAX_RERUNS)
    return [
        Suspect(
            obs.nodeid,
            stats.reruns_needed(len(base), family_alpha, config.perf_reruns, cap),
            tuple(base),
            limits.ratio,
            limits.floor_ns,
        )
        for obs, base, limits in flagged
    ]


def _screened(
    current: Sequence[TestObservation],
    history: Mapping[str, Sequence[PastResult]],
    config: Config,
    timed: bool,
) -> list[tuple[TestObservation, list[int], Thresholds]]:
    """(test, baseline sample, thresholds) of each passing test that clears the screen.

    A run under coverage tracing (`timed=False`) is slower everywhere, and each test by its own
    factor: its duration is divided by the test's own tracing factor (its earlier traced
    durations over its untraced ones) when it has traced durations, otherwise by the run's
    typical factor, and compared with its untraced baseline. The untraced baseline is the
    longer record, so its spread is the better estimate of the test's usual spread; and it must
    exceed every untraced duration on record. Either way only tests slower than tracing
    explains become suspects, to be judged on untraced re-runs.
    """
    candidates = []
    floor_ns = config.perf_floor_ms * 1e6
    for obs in current:
        # Growth of at least the floor needs a duration of at least the floor: most tests of a
        # large suite stop here without looking at their history.
        if obs.outcome != PASSED or (obs.floor_ms is None and obs.call_ns < floor_ns):
            continue
        base = baseline_sample(history.get(obs.nodeid, ()))
        if len(base) >= MIN_BASELINE:
            # Each baseline's median once: the run's tracing factor and the test's own need it.
            usual = 0.0 if timed else stats.median(base)
            candidates.append((obs, base, thresholds(config, obs.ratio, obs.floor_ms), usual))
    factor = 1.0 if timed else tracing_factor([(c[0].call_ns, c[3]) for c in candidates])
    flagged = []
    for obs, base, limits, usual in candidates:
        value = obs.call_ns
        if not timed:
            own = traced_sample(history.get(obs.nodeid, ()))
            value = int(value / (stats.median(own) / usual if own and usual > 0 else factor))
            # A tracing factor is an estimate: the normalised duration must also be above
            # every untraced run on record, or a heavy-tailed test pays a pilot re-run on many
            # refresh runs (a smaller slowdown is still judged on the next untraced run).
            if value <= max(base):
                continue
        if clears_screen(value, base, limits.ratio, limits.floor_ns):
            flagged.append((obs, base, limits))
    return flagged


# Tests a tracing slowdown is estimated from; with fewer, one slowed test would move the
# estimate, so traced durations are screened as they are (more suspects, each re-run untraced).
TRACING_MIN_TESTS = 10


def tracing_factor(measured: Sequence[tuple[int, float]]) -> float:
    """How much slower a traced run's tests are than their untraced baselines: the median of
    each test's duration over its baseline median, given as (duration, median); never below 1."""
    ratios = [duration / median for duration, median in measured if median > 0]
    if len(ratios) < TRACING_MIN_TESTS:
        return 1.0
    return max(1.0, stats.median(ratios))


def detect_slowdowns(baton: AnomalyBaton, config: Config) -> list[Anomaly]:
    """Confirm the suspects on their re-run sample; Holm across every suspect compared."""
    timed = baton.request.timed
    candidates = []
    for obs, base, _ in _screened(baton.current, baton.history, config, timed):
        # The re-runs are fresh data, independent of the screen that picked the test; the
        # screening run itself is only used when no re-run could be made, and never when it
        # ran under coverage tracing (its durations are not comparable with the baseline).
        confirmed = baton.confirmation.durations
        if obs.nodeid in confirmed and not confirmed[obs.nodeid]:
            continue  # the re-run refuted it (no longer slow, or no longer passing)
        sample = list(confirmed.get(obs.nodeid, ())) or ([obs.call_ns] if timed else [])
        if sample:
            candidates.append((obs, base, sample, stats.mann_whitney_greater(sample, base)))
    adjusted = stats.holm_adjusted([c[3].p_value for c in candidates])
    found = []
    for (obs, base, sample, test), p_adj in zip(candidates, adjusted, strict=True):
        limits = thresholds(config, obs.ratio, obs.floor_ms)
        if p_adj > limits.alpha or not stats.is_suspect(
            sample, base, limits.ratio, limits.floor_ns
        ):
            continue
        found.append(
            _anomaly(
                baton, obs, base=base, sample=sample, test=test, p_adj=p_adj, family=len(candidates)
            )
        )
    return found


def _anomaly(
    baton: AnomalyBaton,
    obs: TestObservation,
    *,
    base: list[int],
    sample: list[int],
    test: stats.RankTest,
    p_adj: float,
    family: int,
) -> Anomaly:
    ratio = stats.median_ratio(sample, base)
    base_ms, cur_ms = ms(stats.median(base)), ms(stats.median(sample))
    req = baton.request
    return Anomaly(
        id=anomaly_id(req.run_id, AnomalyKind.PERFORMANCE, "slowdown", obs.nodeid),
        kind=AnomalyKind.PERFORMANCE,
        subtype="slowdown",
        severity=stats.severity_for_ratio(ratio),
        confidence=round(max(0.0, 1.0 - p_adj), 4),
        subject=obs.nodeid,
        description=(
            f"{obs.nodeid} is {ratio:.2f}x slower: median {cur_ms:.1f} ms over "
            f"{len(sample)} runs vs {base_ms:.1f} ms over {len(base)} earlier runs "
            f"(p={p_adj:.3g} after Holm over {family})"
        ),
        detected_ns=req.detected_ns,
        run_id=req.run_id,
        baseline_run_id=baton.baseline_runs[0] if baton.baseline_runs else 0,
        commit=req.commit,
        baseline_commit=baton.baseline_commit,
        location=CodeLocation(
            file=obs.file, function=obs.nodeid.rsplit("::", 1)[-1], line=obs.line
        ),
        tests=(obs.nodeid,),
        evidence={
            "ratio": round(ratio, 4),
            "current_median_ms": cur_ms,
            "baseline_median_ms": base_ms,
            "first_run_ms": ms(obs.call_ns),
            "n_current": len(sample),
            "n_baseline": len(base),
            "p_value": round(test.p_value, 6),
            "p_adjusted": round(p_adj, 6),
            "tests_compared": family,
            "method": test.method,
            "effect": round(test.effect, 4),
            "spread": round(stats.relative_spread(base), 4),
        },
    )
