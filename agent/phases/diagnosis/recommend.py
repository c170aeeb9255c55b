"""Fix strategies per anomaly kind, ordered by a Beta posterior of their past success."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.records import AnomalyKind, Effort, FixRecommendation, FixType

# Strategy names are shared with agent/phases/fix (one module each) and the learning table.
PARTIAL_REVERT = "partial_revert"
FULL_REVERT = "full_revert"
REPAIR_TEMPLATE = "repair_template"
MUTATION = "mutation"
PERFORMANCE = "performance"
REGRESSION_TEST = "regression_test"
CHARACTERISATION_TEST = "characterisation_test"
DOCUMENTATION = "documentation"
LLM = "llm"


@dataclass(frozen=True)
class Prior:
    """Beta(alpha, beta) before any history; alpha/(alpha+beta) is the assumed success rate."""

    alpha: float
    beta: float
    fix_type: FixType
    effort: Effort
    needs_culprit: bool = False


# Fixed priors: reverting the change that broke a test usually holds (SapFix reports the same);
# templates and mutations succeed less often; a full revert is the blunt last resort; the model
# generator is unproven until the learning store says otherwise. Each prior weighs as 4 outcomes.
_PRIORS: dict[AnomalyKind, dict[str, Prior]] = {
    AnomalyKind.ERROR: {
        PARTIAL_REVERT: Prior(3.0, 1.0, FixType.CODE, Effort.LOW, needs_culprit=True),
        REPAIR_TEMPLATE: Prior(2.4, 1.6, FixType.CODE, Effort.LOW),
        MUTATION: Prior(2.0, 2.0, FixType.CODE, Effort.MEDIUM),
        LLM: Prior(1.6, 2.4, FixType.CODE, Effort.HIGH),
        FULL_REVERT: Prior(1.2, 2.8, FixType.CODE, Effort.LOW, needs_culprit=True),
        REGRESSION_TEST: Prior(2.0, 2.0, FixType.TEST, Effort.LOW),
        DOCUMENTATION: Prior(1.0, 3.0, FixType.DOCUMENTATION, Effort.LOW),
    },
    AnomalyKind.PERFORMANCE: {
        PARTIAL_REVERT: Prior(3.0, 1.0, FixType.CODE, Effort.LOW, needs_culprit=True),
        PERFORMANCE: Prior(2.2, 1.8, FixType.CODE, Effort.MEDIUM),
        LLM: Prior(1.4, 2.6, FixType.CODE, Effort.HIGH),
        FULL_REVERT: Prior(1.2, 2.8, FixType.CODE, Effort.LOW, needs_culprit=True),
        CHARACTERISATION_TEST: Prior(1.5, 2.5, FixType.TEST, Effort.LOW),
        DOCUMENTATION: Prior(1.0, 3.0, FixType.DOCUMENTATION, Effort.LOW),
    },
    AnomalyKind.BEHAVIORAL: {
        PARTIAL_REVERT: Prior(2.8, 1.2, FixType.CODE, Effort.LOW, needs_culprit=True),
        PERFORMANCE: Prior(1.6, 2.4, FixType.CODE, Effort.MEDIUM),
        LLM: Prior(1.4, 2.6, FixType.CODE, Effort.HIGH),
        FULL_REVERT: Prior(1.2, 2.8, FixType.CODE, Effort.LOW, needs_culprit=True),
    },
    AnomalyKind.COVERAGE: {
        CHARACTERISATION_TEST: Prior(2.4, 1.6, FixType.TEST, Effort.LOW),
        REGRESSION_TEST: Prior(1.6, 2.4, FixType.TEST, Effort.LOW),
    },
}
_DEFAULT_KIND = AnomalyKind.ERROR

Learned = Mapping[str, tuple[float, float]]  # strategy -> (successes, failures)


def posterior_mean(prior: Prior, successes: float, failures: float) -> float:
    return (prior.alpha + successes) / (prior.alpha + prior.beta + successes + failures)


def priors_for(kind: AnomalyKind) -> dict[str, Prior]:
    return _PRIORS.get(kind, _PRIORS[_DEFAULT_KIND])


def recommend(
    kind: AnomalyKind, learned: Learned, have_culprit: bool, extra: Sequence[str] = ()
) -> list[FixRecommendation]:
    """Strategies for this kind of anomaly, best expected success first (ties: cheaper first)."""
    rows = []
    for name, prior in priors_for(kind).items():
        if prior.needs_culprit and not have_culprit:
            continue
        s, f = learned.get(name, (0.0, 0.0))
        mean = posterior_mean(prior, s, f)
        why = f"Beta({prior.alpha:g}+{s:g}, {prior.beta:g}+{f:g}) mean {mean:.2f}"
        rows.append((mean, _EFFORT_ORDER[prior.effort], name, prior, why))
    rows.sort(key=lambda r: (-r[0], r[1], r[2]))
    result = [
        FixRecommendation(prior.fix_type, name, i + 1, prior.effort, round(mean, 4), why)
        for i, (mean, _e, name, prior, why) in enumerate(rows)
    ]
    for name in extra:
        if all(r.strategy != name for r in result):
            result.append(
                FixRecommendation(FixType.CODE, name, len(result) + 1, Effort.MEDIUM, 0.0, "")
            )
    return result


def strategy_success(learned: Learned, kind: AnomalyKind, strategy: str) -> float:
    """Posterior mean used to break ties between validated patches."""
    prior = priors_for(kind).get(strategy, Prior(1.0, 1.0, FixType.CODE, Effort.MEDIUM))
    s, f = learned.get(strategy, (0.0, 0.0))
    return posterior_mean(prior, s, f)


_EFFORT_ORDER = {Effort.LOW: 0, Effort.MEDIUM: 1, Effort.HIGH: 2}
