"""Test fixes: a regression test for the input that failed, characterisation tests for hot
code that no test covers."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from agent.phases.diagnosis.recommend import CHARACTERISATION_TEST, REGRESSION_TEST
from agent.phases.fix.base import Candidate, FixWork
from agent.records import FixType


def module_name(path: str) -> str | None:
    """Import name of a repository file (src/ layout aware), or None when it is not a module."""
    if not path.endswith(".py"):
        return None
    parts = path[:-3].split("/")
    if parts[0] == "src":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


def _literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()[:40] or "case"


def _test_path(work: FixWork, stem: str) -> str:
    return f"{work.test_dir}/test_selfheal_{stem}.py"


class RegressionTest:
    """Pins the failing input of the deepest project frame: the call must not raise again."""

    name = REGRESSION_TEST
    fix_type = FixType.TEST

    def propose(self, work: FixWork) -> Iterator[Candidate]:
        if not work.exception or work.exception == "AssertionError" or not work.frames:
            return
        frame = work.frames[-1]
        module = module_name(frame.file)
        if module is None or "." in frame.function or frame.function.startswith("<"):
            return
        if not frame.args or not all(_literal(v) for v in frame.args.values()):
            return
        args = ", ".join(f"{k}={v}" for k, v in frame.args.items())
        stem = _slug(f"{frame.function}_{work.anomaly.id}")
        body = (
            f'"""Regression test written by pytest-selfheal for anomaly {work.anomaly.id}."""\n\n'
            f"from {module} import {frame.function}\n\n\n"
            f"def test_{stem}() -> None:\n"
            f"    # {work.anomaly.subject} raised {work.exception} on this input.\n"
            f"    {frame.function}({args})\n"
        )
        path = _test_path(work, stem)
        if path not in work.sources:
            yield Candidate(
                self.name,
                self.fix_type,
                f"regression test: {frame.function}({args}) must not raise",
                {path: body},
                0,
            )


class CharacterisationTests:
    """Asserts today's observed results of uncovered functions, so later changes are noticed."""

    name = CHARACTERISATION_TEST
    fix_type = FixType.TEST

    def propose(self, work: FixWork) -> Iterator[Candidate]:
        by_module: dict[str, list[tuple[str, str]]] = {}
        for key, value in sorted(work.observations.items()):
            file, _, func = key.partition("::")
            module = module_name(file)
            if module and func.isidentifier() and _literal(value):
                by_module.setdefault(module, []).append((func, value))
        for module, cases in sorted(by_module.items()):
            names = ", ".join(sorted({f for f, _ in cases}))
            lines = [
                f'"""Characterisation tests written by pytest-selfheal: {module} as it behaves '
                'today."""',
                "",
                f"from {module} import {names}",
            ]
            for func, value in cases:
                lines += [
                    "",
                    "",
                    f"def test_{_slug(func)}_characterisation() -> None:",
                    f"    assert {func}() == {value}",
                ]
            path = _test_path(work, _slug(module) + "_characterisation")
            yield Candidate(
                self.name,
                self.fix_type,
                f"characterisation tests for {names}",
                {path: "\n".join(lines) + "\n"},
                0,
            )
