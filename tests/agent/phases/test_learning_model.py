"""The Beta success model over the store's learning table."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.phases.learning.model import (
    posterior_mean,
    rank_strategies,
    record_outcome,
    strategy_scores,
    strategy_stats,
)
from agent.records import AnomalyKind
from agent.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / ".selfheal" / "selfheal.db")
    yield s
    s.close()


def test_posterior_mean_prior_and_updates() -> None:
    assert posterior_mean(0, 0) == 0.5
    assert posterior_mean(3, 0) == 0.8
    assert posterior_mean(0, 2) == 0.25


def test_empty_store_scores_nothing_and_keeps_ladder(store: Store) -> None:
    assert strategy_scores(store, AnomalyKind.ERROR) == {}
    assert rank_strategies(["revert", "template", "mutation"], {}) == [
        "revert",
        "template",
        "mutation",
    ]


def test_outcomes_accumulate_per_kind_and_reorder(store: Store) -> None:
    record_outcome(store, AnomalyKind.ERROR, "mutation", True)
    record_outcome(store, AnomalyKind.ERROR, "mutation", True)
    record_outcome(store, AnomalyKind.ERROR, "revert", False)
    record_outcome(store, AnomalyKind.PERFORMANCE, "revert", True)
    scores = strategy_scores(store, AnomalyKind.ERROR)
    assert scores == {"mutation": 0.75, "revert": 1 / 3}
    assert strategy_scores(store, "performance") == {"revert": 2 / 3}
    ladder = ["revert", "template", "mutation"]
    assert rank_strategies(ladder, scores) == ["mutation", "template", "revert"]
    rows = strategy_stats(store)
    assert (rows[0].anomaly_kind, rows[0].strategy) == ("error", "mutation")


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store.open(path) as s:
        record_outcome(s, "error", "template", True, weight=2.0)
    with Store.open(path) as s:
        (row,) = strategy_stats(s, "error")
    assert (row.successes, row.failures) == (2.0, 0.0)


def test_weight_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="positive"):
        record_outcome(store, "error", "x", True, weight=0)
