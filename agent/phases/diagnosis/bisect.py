"""Find the culprit commit between a good baseline and HEAD, tolerant of flaky outcomes."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


class Verdict(enum.Enum):
    GOOD = "good"
    BAD = "bad"
    SKIP = "skip"  # the commit does not build or collect: no information


@dataclass(frozen=True)
class BisectResult:
    culprit: str  # the first bad commit, or "" when it could not be pinned down
    tested: tuple[tuple[str, str], ...]  # (commit, verdict) in the order they were tried
    reason: str


def majority(trial: Callable[[], Verdict], repeats: int = 3) -> Verdict:
    """Run `trial` until one verdict has a majority of `repeats`; SKIP as soon as one skips."""
    need = repeats // 2 + 1
    counts = {Verdict.GOOD: 0, Verdict.BAD: 0}
    for _ in range(repeats):
        verdict = trial()
        if verdict is Verdict.SKIP:
            return Verdict.SKIP
        counts[verdict] += 1
        if counts[verdict] >= need:
            return verdict
    return max(counts, key=lambda v: counts[v])


def first_bad(
    commits: Sequence[str],
    check: Callable[[str], Verdict],
    deadline: float,
) -> BisectResult:
    """Binary search over `commits` (oldest first; the parent of the first is known good and the
    last is known bad). Skipped commits are stepped around as `git bisect skip` does."""
    if not commits:
        return BisectResult("", (), "no commits between the baseline and HEAD")
    lo, hi = -1, len(commits) - 1  # lo: last known good index, hi: first known bad index
    skipped: set[int] = set()
    tested: list[tuple[str, str]] = []
    while hi - lo > 1:
        if time.monotonic() > deadline:
            return BisectResult("", tuple(tested), _range_reason(commits, lo, hi, "time ran out"))
        mid = _pick(lo, hi, skipped)
        if mid is None:
            return BisectResult("", tuple(tested), _range_reason(commits, lo, hi, "untestable"))
        verdict = check(commits[mid])
        tested.append((commits[mid], verdict.value))
        if verdict is Verdict.SKIP:
            skipped.add(mid)
        elif verdict is Verdict.BAD:
            hi = mid
        else:
            lo = mid
    return BisectResult(commits[hi], tuple(tested), f"first bad commit after {len(tested)} checks")


def _pick(lo: int, hi: int, skipped: set[int]) -> int | None:
    """The untested index nearest the middle of (lo, hi)."""
    mid = (lo + hi) // 2
    for offset in range(hi - lo):
        for cand in (mid - offset, mid + offset):
            if lo < cand < hi and cand not in skipped:
                return cand
    return None


def _range_reason(commits: Sequence[str], lo: int, hi: int, why: str) -> str:
    first = commits[lo + 1][:10]
    return f"{why}: the culprit is one of {hi - lo} commits from {first} to {commits[hi][:10]}"
