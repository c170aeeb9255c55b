"""Differential cProfile: which project functions take more time now than at the baseline."""

from __future__ import annotations

import pstats
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# (repository-relative file, first line, function name) -> (calls, cumulative seconds)
Profile = dict[tuple[str, int, str], tuple[int, float]]


@dataclass(frozen=True)
class Growth:
    file: str
    line: int
    function: str
    base_s: float
    current_s: float
    base_calls: int
    current_calls: int

    @property
    def grown_s(self) -> float:
        return self.current_s - self.base_s


def read_profile(path: Path, root: Path, skip_tests: bool = True) -> Profile:
    """Project functions from a cProfile output file, keyed by location relative to `root`."""
    from agent.phases.diagnosis.source import is_test_file

    stats = pstats.Stats(str(path))
    raw: Mapping[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = stats.stats  # type: ignore[attr-defined]
    result: Profile = {}
    root = root.resolve()
    for (filename, line, name), (_cc, calls, _tt, cumulative, _callers) in raw.items():
        try:
            rel = Path(filename).resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            continue
        if skip_tests and is_test_file(rel):
            continue
        key = (rel, int(line), str(name))
        prev = result.get(key, (0, 0.0))
        result[key] = (prev[0] + int(calls), prev[1] + float(cumulative))
    return result


def grown_functions(
    base: Profile, current: Profile, min_share: float = 0.1, min_s: float = 0.001
) -> list[Growth]:
    """Functions whose cumulative time grew, largest growth first.

    A function is named when its growth is at least `min_share` of the largest growth and above
    `min_s` (timer noise). Functions new since the baseline count from zero; a function that moved
    to another line is matched by (file, name) when its exact key is gone.
    """
    by_name = {(f, n): (c, s) for (f, _l, n), (c, s) in base.items()}
    rows = []
    for key, (calls, secs) in current.items():
        file, line, name = key
        b_calls, b_secs = base.get(key) or by_name.get((file, name)) or (0, 0.0)
        rows.append(Growth(file, line, name, b_secs, secs, b_calls, calls))
    rows = [r for r in rows if r.grown_s > min_s]
    if not rows:
        return []
    top = max(r.grown_s for r in rows)
    rows = [r for r in rows if r.grown_s >= min_share * top]
    rows.sort(key=lambda r: (-r.grown_s, r.file, r.line))
    return rows
