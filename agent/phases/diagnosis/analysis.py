"""Pure analyses of the collected codebase info: localisation, frames, culprit hunks, impact."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agent.phases.diagnosis.codebase import CodebaseInfo, Line
from agent.phases.diagnosis.ochiai import RankedLine, rank_lines
from agent.phases.diagnosis.profile import Growth, grown_functions
from agent.phases.diagnosis.pytest_exec import Frame
from agent.phases.diagnosis.source import Function, is_test_file
from agent.records import Anomaly, CodeLocation, Impact, RootCause, Severity

TRACEBACK_BOOST = 1.0
CULPRIT_BOOST = 0.5


def failing_tests(info: CodebaseInfo, anomaly: Anomaly) -> list[str]:
    """The failing tests of the coverage run, when the anomaly's own tests are among them.

    Other tests that fail in the same run add evidence to the spectrum; but when none of the
    anomaly's tests fails at HEAD the failure does not reproduce, and the list is empty.
    """
    failed = [t for t, r in info.tests.items() if not r.ok]
    if anomaly.tests and not set(anomaly.tests) & set(failed):
        return []
    return failed


def project_frames(info: CodebaseInfo, tests: Sequence[str]) -> list[Frame]:
    """Frames in project code (not tests) of the failing tests' exceptions, innermost last."""
    frames: list[Frame] = []
    for test in tests:
        result = info.tests.get(test)
        if result is not None:
            frames.extend(f for f in result.frames if not is_test_file(f.file))
    return frames


def deepest_frame(info: CodebaseInfo, tests: Sequence[str]) -> CodeLocation:
    """The innermost project frame of the first failing test that has one."""
    for test in tests:
        result = info.tests.get(test)
        if result is None:
            continue
        own = [f for f in result.frames if not is_test_file(f.file)]
        if own:
            f = own[-1]
            return CodeLocation(f.file, f.function, f.line)
    return CodeLocation()


def culprit_lines(diff_text: str) -> set[Line]:
    """Lines the culprit commit added or changed (post-image numbers)."""
    if not diff_text:
        return set()
    from unidiff.patch import PatchSet

    start = diff_text.find("diff --git")
    if start < 0:
        return set()
    lines: set[Line] = set()
    for pfile in PatchSet(diff_text[start:]):
        for hunk in pfile:
            for ln in hunk:
                if ln.is_added and ln.target_line_no:
                    lines.add((pfile.path, ln.target_line_no))
    return lines


def localise(info: CodebaseInfo, tests: Sequence[str], limit: int = 30) -> list[RankedLine]:
    """Ochiai over project lines; ties broken by traceback and culprit evidence."""
    project = {
        t: frozenset(line for line in lines if not is_test_file(line[0]))
        for t, lines in info.coverage.items()
    }
    boost: dict[Line, float] = {}
    for frame in project_frames(info, tests):
        boost[(frame.file, frame.line)] = TRACEBACK_BOOST
    for line in culprit_lines(info.culprit_diff):
        boost[line] = boost.get(line, 0.0) + CULPRIT_BOOST
    return rank_lines(project, tests, boost, limit)


def function_of(functions: Mapping[str, Sequence[Function]], file: str, line: int) -> str:
    best = ""
    best_start = -1
    for func in functions.get(file, ()):
        if func.contains(line) and func.start >= best_start:
            best, best_start = func.qualname, func.start
    return best


def line_causes(info: CodebaseInfo, ranked: Sequence[RankedLine], top: int) -> list[RootCause]:
    causes = []
    for item in ranked[:top]:
        func = function_of(info.functions, item.file, item.line)
        causes.append(
            RootCause(
                f"suspicious line (Ochiai {item.score:.2f}, rank {item.rank})",
                CodeLocation(item.file, func, item.line),
                round(item.score, 4),
                {"ef": item.failed, "ep": item.passed, "rank": item.rank, "kind": "ochiai"},
            )
        )
    return causes


def growth_causes(info: CodebaseInfo, limit: int = 5) -> list[RootCause]:
    rows: list[Growth] = grown_functions(info.profile_base, info.profile_current)[:limit]
    return [
        RootCause(
            f"{g.function} takes {g.current_s * 1000:.1f} ms, was {g.base_s * 1000:.1f} ms "
            f"({g.base_calls} -> {g.current_calls} calls)",
            CodeLocation(g.file, g.function, g.line),
            round(g.grown_s, 6),
            {
                "kind": "profile",
                "base_s": g.base_s,
                "current_s": g.current_s,
                "base_calls": g.base_calls,
                "current_calls": g.current_calls,
            },
        )
        for g in rows
    ]


def uncovered_functions(info: CodebaseInfo) -> list[CodeLocation]:
    """Functions in the indexed files that no collected test executes."""
    covered = {line for lines in info.coverage.values() for line in lines}
    result = []
    for file, funcs in info.functions.items():
        for func in funcs:
            body = range(func.start + 1, func.end + 1)
            if not any((file, n) in covered for n in body):
                result.append(CodeLocation(file, func.qualname, func.start))
    return result


def assess_impact(anomaly: Anomaly, info: CodebaseInfo | None) -> Impact:
    """Tests, requests and users affected, and a severity raised by a wide blast radius."""
    failing = {t for t, r in (info.tests if info else {}).items() if not r.ok}
    tests = len(failing | set(anomaly.tests))
    requests = _evidence_int(anomaly, "requests", "count", "error_count")
    users = _evidence_int(anomaly, "users", "user_count")
    severity = anomaly.severity
    if tests >= 5 or users >= 100 or requests >= 1000:
        severity = _raise(severity)
    parts = [f"{tests} test{'s' if tests != 1 else ''}"]
    if requests:
        parts.append(f"{requests} requests")
    if users:
        parts.append(f"{users} users")
    return Impact(tests, requests, users, severity, "affects " + ", ".join(parts))


def _evidence_int(anomaly: Anomaly, *keys: str) -> int:
    for key in keys:
        value = anomaly.evidence.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return 0


def _raise(severity: Severity) -> Severity:
    order = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]
    return order[min(order.index(severity) + 1, len(order) - 1)]
