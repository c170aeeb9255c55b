"""Strategy ladder: fixed priors until there is history, then the learned posterior."""

from __future__ import annotations

from agent.phases.diagnosis.recommend import (
    FULL_REVERT,
    MUTATION,
    PARTIAL_REVERT,
    REPAIR_TEMPLATE,
    posterior_mean,
    priors_for,
    recommend,
)
from agent.records import AnomalyKind


def _order(learned: dict[str, tuple[float, float]], culprit: bool = True) -> list[str]:
    return [r.strategy for r in recommend(AnomalyKind.ERROR, learned, culprit)]


def test_prior_order_puts_partial_revert_first_and_full_revert_late() -> None:
    order = _order({})
    assert order[0] == PARTIAL_REVERT
    assert order.index(FULL_REVERT) > order.index(MUTATION)


def test_reverts_need_a_culprit() -> None:
    order = _order({}, culprit=False)
    assert PARTIAL_REVERT not in order and FULL_REVERT not in order
    assert order[0] == REPAIR_TEMPLATE


def test_history_reorders_the_ladder() -> None:
    learned = {PARTIAL_REVERT: (0.0, 20.0), MUTATION: (15.0, 1.0)}
    order = _order(learned)
    assert order[0] == MUTATION
    assert order.index(PARTIAL_REVERT) > order.index(REPAIR_TEMPLATE)


def test_posterior_mean_is_the_beta_mean() -> None:
    prior = priors_for(AnomalyKind.ERROR)[MUTATION]
    assert posterior_mean(prior, 0, 0) == prior.alpha / (prior.alpha + prior.beta)
    assert posterior_mean(prior, 6, 0) == (prior.alpha + 6) / (prior.alpha + prior.beta + 6)


def test_priorities_are_consecutive_and_benefits_descend() -> None:
    recs = recommend(AnomalyKind.PERFORMANCE, {}, True)
    assert [r.priority for r in recs] == list(range(1, len(recs) + 1))
    benefits = [r.expected_benefit for r in recs]
    assert benefits == sorted(benefits, reverse=True)
