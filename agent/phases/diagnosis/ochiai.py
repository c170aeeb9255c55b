"""Spectrum-based fault localisation: Ochiai suspiciousness of lines from per-test coverage."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Line = tuple[str, int]  # (repository-relative file, line number)


@dataclass(frozen=True)
class RankedLine:
    file: str
    line: int
    score: float
    failed: int  # failing tests that execute the line (ef)
    passed: int  # passing tests that execute the line (ep)
    rank: int  # 1-based; tied lines share the worst (pessimistic) rank of their group


def ochiai(ef: int, ep: int, total_failed: int) -> float:
    """ef / sqrt(F * (ef + ep)); 0 when nothing failed or the line ran in no test."""
    if total_failed <= 0 or ef + ep == 0 or ef == 0:
        return 0.0
    return ef / math.sqrt(total_failed * (ef + ep))


def spectra(
    coverage: Mapping[str, Iterable[Line]], failed: Iterable[str]
) -> dict[Line, tuple[int, int]]:
    """(ef, ep) per line from {test: lines it ran} and the set of failing tests."""
    failing = set(failed)
    counts: dict[Line, list[int]] = {}
    for test, lines in coverage.items():
        slot = 0 if test in failing else 1
        for line in set(lines):
            counts.setdefault(line, [0, 0])[slot] += 1
    return {line: (c[0], c[1]) for line, c in counts.items()}


def rank_lines(
    coverage: Mapping[str, Iterable[Line]],
    failed: Iterable[str],
    boost: Mapping[Line, float] | None = None,
    limit: int = 50,
) -> list[RankedLine]:
    """Lines ordered by Ochiai score, then by `boost` (other evidence), best first.

    `boost` breaks ties between equally suspicious lines with independent signals (a line in
    the exception's traceback, a line the culprit commit changed); it never lifts a line above
    one with a higher Ochiai score. Ranks are pessimistic: a line tied with k others on both
    keys is reported at the last position of its group, as fault-localisation studies count.
    """
    failing = [t for t in failed if t in coverage]
    total_failed = len(set(failing))
    extra = boost or {}
    scored = [
        (ochiai(ef, ep, total_failed), extra.get(line, 0.0), line, ef, ep)
        for line, (ef, ep) in spectra(coverage, failing).items()
    ]
    scored = [s for s in scored if s[0] > 0.0]
    scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
    result: list[RankedLine] = []
    i = 0
    while i < len(scored) and len(result) < limit:
        j = i
        while j < len(scored) and scored[j][:2] == scored[i][:2]:
            j += 1
        for score, _, (file, line), ef, ep in scored[i:j]:
            result.append(RankedLine(file, line, score, ef, ep, rank=j))
        i = j
    return result[:limit]


def rank_of(ranked: Iterable[RankedLine], file: str, line: int) -> int | None:
    """The rank of one line, or None when it is not among the suspicious lines."""
    for item in ranked:
        if item.file == file and item.line == line:
            return item.rank
    return None
