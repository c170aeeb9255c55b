"""Ochiai suspiciousness: the formula's truth table and the ranking of lines."""

from __future__ import annotations

import math

import pytest

from agent.phases.diagnosis.ochiai import ochiai, rank_lines, rank_of, spectra


@pytest.mark.parametrize(
    ("ef", "ep", "failed", "expected"),
    [
        (1, 0, 1, 1.0),  # only the failing test runs it
        (2, 0, 2, 1.0),
        (1, 1, 1, 1 / math.sqrt(2)),
        (1, 3, 2, 1 / math.sqrt(8)),
        (2, 2, 4, 2 / math.sqrt(16)),
        (0, 5, 1, 0.0),  # never run by a failing test
        (0, 0, 1, 0.0),  # never run at all
        (1, 0, 0, 0.0),  # nothing failed: no evidence
    ],
)
def test_ochiai_truth_table(ef: int, ep: int, failed: int, expected: float) -> None:
    assert ochiai(ef, ep, failed) == pytest.approx(expected)


def test_spectra_counts_failing_and_passing_runs() -> None:
    coverage = {
        "t1": [("a.py", 1), ("a.py", 2)],
        "t2": [("a.py", 1)],
        "t3": [("a.py", 2), ("a.py", 3)],
    }
    assert spectra(coverage, ["t3"]) == {
        ("a.py", 1): (0, 2),
        ("a.py", 2): (1, 1),
        ("a.py", 3): (1, 0),
    }


def test_rank_lines_orders_by_score_and_drops_unsuspicious_lines() -> None:
    coverage = {
        "pass1": [("m.py", 1), ("m.py", 2)],
        "pass2": [("m.py", 1), ("m.py", 2)],
        "fail": [("m.py", 1), ("m.py", 3)],
    }
    ranked = rank_lines(coverage, ["fail"])
    assert [(r.file, r.line) for r in ranked] == [("m.py", 3), ("m.py", 1)]
    assert ranked[0].score == 1.0 and ranked[0].rank == 1
    assert ranked[1].score == pytest.approx(1 / math.sqrt(3))
    assert rank_of(ranked, "m.py", 2) is None  # only passing tests run it


def test_ties_share_the_pessimistic_rank_unless_other_evidence_breaks_them() -> None:
    coverage = {"fail": [("m.py", n) for n in (1, 2, 3)], "ok": [("m.py", 9)]}
    tied = rank_lines(coverage, ["fail"])
    assert {r.rank for r in tied} == {3}
    broken = rank_lines(coverage, ["fail"], boost={("m.py", 2): 1.0})
    assert rank_of(broken, "m.py", 2) == 1
    assert rank_of(broken, "m.py", 1) == 3


def test_boost_never_lifts_a_line_above_a_higher_score() -> None:
    coverage = {"fail": [("m.py", 1), ("m.py", 2)], "ok": [("m.py", 2)]}
    ranked = rank_lines(coverage, ["fail"], boost={("m.py", 2): 10.0})
    assert [r.line for r in ranked] == [1, 2]


def test_failing_tests_without_coverage_are_ignored() -> None:
    assert rank_lines({"ok": [("m.py", 1)]}, ["missing"]) == []
