"""Culprit search: binary search with skips, majority votes against flaky outcomes."""

from __future__ import annotations

import itertools
import time

from agent.phases.diagnosis.bisect import Verdict, first_bad, majority

COMMITS = [f"c{i}" for i in range(8)]


def _checker(first_bad_index: int, skip: frozenset[str] = frozenset()) -> tuple[list[str], object]:
    seen: list[str] = []

    def check(sha: str) -> Verdict:
        seen.append(sha)
        if sha in skip:
            return Verdict.SKIP
        return Verdict.BAD if COMMITS.index(sha) >= first_bad_index else Verdict.GOOD

    return seen, check


def test_finds_each_possible_culprit_in_log_steps() -> None:
    for index in range(len(COMMITS)):
        seen, check = _checker(index)
        result = first_bad(COMMITS, check, time.monotonic() + 60)  # type: ignore[arg-type]
        assert result.culprit == COMMITS[index]
        assert len(seen) <= 3  # log2(8)


def test_skipped_commits_are_stepped_around() -> None:
    _, check = _checker(5, frozenset({"c3"}))
    result = first_bad(COMMITS, check, time.monotonic() + 60)  # type: ignore[arg-type]
    assert result.culprit == "c5"
    assert ("c3", "skip") in result.tested


def test_skips_next_to_the_culprit_leave_it_ambiguous() -> None:
    _, check = _checker(5, frozenset({"c3", "c4"}))
    result = first_bad(COMMITS, check, time.monotonic() + 60)  # type: ignore[arg-type]
    assert result.culprit == ""
    assert "one of 3 commits from c3 to c5" in result.reason


def test_untestable_range_names_the_candidates() -> None:
    _, check = _checker(2, frozenset(COMMITS[:7]))
    result = first_bad(COMMITS, check, time.monotonic() + 60)  # type: ignore[arg-type]
    assert result.culprit == ""
    assert "untestable" in result.reason and "8 commits" in result.reason


def test_a_spent_deadline_stops_the_search_with_a_reason() -> None:
    _, check = _checker(4)
    result = first_bad(COMMITS, check, time.monotonic() - 1)  # type: ignore[arg-type]
    assert result.culprit == "" and "time ran out" in result.reason


def test_majority_outvotes_a_flaky_failure() -> None:
    outcomes = iter([Verdict.BAD, Verdict.GOOD, Verdict.GOOD])
    assert majority(lambda: next(outcomes)) is Verdict.GOOD


def test_majority_stops_once_decided() -> None:
    calls = itertools.count()

    def trial() -> Verdict:
        next(calls)
        return Verdict.BAD

    assert majority(trial, repeats=5) is Verdict.BAD
    assert next(calls) == 3


def test_majority_skips_at_once() -> None:
    assert majority(lambda: Verdict.SKIP) is Verdict.SKIP
