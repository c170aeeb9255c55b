"""The learned success model: a Beta posterior per (anomaly kind, strategy) in the store."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.records import AnomalyKind
from agent.store import Store

# Beta(1, 1): before any outcome every strategy scores 0.5, so the fixed ladder order decides.
PRIOR_SUCCESSES = 1.0
PRIOR_FAILURES = 1.0


@dataclass(frozen=True)
class StrategyStats:
    """Observed outcomes of one strategy on one kind of anomaly."""

    anomaly_kind: str
    strategy: str
    successes: float
    failures: float
    updated_ns: int = 0

    @property
    def trials(self) -> float:
        return self.successes + self.failures

    @property
    def mean(self) -> float:
        return posterior_mean(self.successes, self.failures)


def posterior_mean(successes: float, failures: float) -> float:
    """Mean of Beta(prior + successes, prior + failures)."""
    alpha = PRIOR_SUCCESSES + successes
    return alpha / (alpha + PRIOR_FAILURES + failures)


def _kind(kind: AnomalyKind | str) -> str:
    return kind.value if isinstance(kind, AnomalyKind) else kind


def strategy_stats(store: Store, kind: AnomalyKind | str | None = None) -> list[StrategyStats]:
    """Every (kind, strategy) row, optionally for one kind, best posterior mean first."""
    sql = "SELECT anomaly_kind, strategy, successes, failures, updated_ns FROM learning"
    args: tuple[str, ...] = ()
    if kind is not None:
        sql += " WHERE anomaly_kind = ?"
        args = (_kind(kind),)
    rows = [
        StrategyStats(str(k), str(s), float(a), float(b), int(u))
        for k, s, a, b, u in store.conn.execute(sql, args)
    ]
    return sorted(rows, key=lambda r: (-r.mean, r.anomaly_kind, r.strategy))


def strategy_scores(store: Store, kind: AnomalyKind | str) -> dict[str, float]:
    """Posterior mean success rate per strategy for one anomaly kind (only strategies seen)."""
    return {row.strategy: row.mean for row in strategy_stats(store, kind)}


def rank_strategies(ladder: Iterable[str], scores: Mapping[str, float]) -> list[str]:
    """The ladder reordered by learned score; unseen strategies score the prior mean (0.5) and
    ties keep their ladder order, so without history the ladder is unchanged."""
    prior = posterior_mean(0.0, 0.0)
    order = list(ladder)
    return sorted(order, key=lambda s: (-scores.get(s, prior), order.index(s)))


def record_outcome(
    store: Store, kind: AnomalyKind | str, strategy: str, success: bool, weight: float = 1.0
) -> StrategyStats:
    """Add one observed outcome (weighted) and return the updated row."""
    if weight <= 0:
        raise ValueError(f"outcome weight must be positive, got {weight}")
    now = time.time_ns()
    column = "successes" if success else "failures"
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO learning (anomaly_kind, strategy, successes, failures, updated_ns)"
            " VALUES (?, ?, 0, 0, ?) ON CONFLICT (anomaly_kind, strategy) DO NOTHING",
            (_kind(kind), strategy, now),
        )
        # `column` is one of two literals above, never user input.
        conn.execute(
            f"UPDATE learning SET {column} = {column} + ?, updated_ns = ?"
            " WHERE anomaly_kind = ? AND strategy = ?",
            (weight, now, _kind(kind), strategy),
        )
    row = store.conn.execute(
        "SELECT successes, failures FROM learning WHERE anomaly_kind = ? AND strategy = ?",
        (_kind(kind), strategy),
    ).fetchone()
    return StrategyStats(_kind(kind), strategy, float(row[0]), float(row[1]), now)
