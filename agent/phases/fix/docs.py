"""Documentation fixes: docstrings that a code patch makes stale (numbers and names it changed)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping

from agent.phases.diagnosis.recommend import DOCUMENTATION
from agent.phases.fix.base import Candidate, FixWork
from agent.records import FixType


def _functions(text: str) -> dict[str, ast.FunctionDef]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    return {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def _constants(func: ast.FunctionDef) -> list[object]:
    body = func.body[1:] if ast.get_docstring(func) else func.body
    defaults = [d for d in (*func.args.defaults, *func.args.kw_defaults) if d is not None]
    return [
        n.value
        for s in (*defaults, *body)
        for n in ast.walk(s)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, int | float)
        and not isinstance(n.value, bool)
    ]


def _params(func: ast.FunctionDef) -> list[str]:
    return [a.arg for a in func.args.args + func.args.kwonlyargs]


def stale_replacements(old: ast.FunctionDef, new: ast.FunctionDef) -> dict[str, str]:
    """Words of the old docstring the code change made wrong: changed constants and renamed
    parameters, matched position by position."""
    swaps: dict[str, str] = {}
    old_c, new_c = _constants(old), _constants(new)
    if len(old_c) == len(new_c):
        for a, b in zip(old_c, new_c, strict=True):
            if a != b:
                swaps[str(a)] = str(b)
    old_p, new_p = _params(old), _params(new)
    if len(old_p) == len(new_p):
        for a, b in zip(old_p, new_p, strict=True):
            if a != b:
                swaps[a] = b
    return swaps


def refresh_docstrings(before: str, after: str) -> str:
    """`after` with the docstrings of changed functions updated; unchanged when nothing is stale."""
    old_funcs = _functions(before)
    result = after
    for name, new in sorted(_functions(after).items(), key=lambda kv: -kv[1].lineno):
        old = old_funcs.get(name)
        doc = ast.get_docstring(new, clean=False)
        if old is None or not doc:
            continue
        swaps = stale_replacements(old, new)
        fresh = doc
        for word, repl in swaps.items():
            fresh = re.sub(rf"(?<![\w.]){re.escape(word)}(?!\w|\.\d)", repl, fresh)
        if fresh != doc:
            node = new.body[0]
            lines = result.splitlines(keepends=True)
            start, end = node.lineno - 1, node.end_lineno or node.lineno
            block = "".join(lines[start:end]).replace(doc, fresh, 1)
            result = "".join(lines[:start]) + block + "".join(lines[end:])
    return result


class DocumentationFix:
    """For each code candidate, the same edit plus the docstrings it made stale."""

    name = DOCUMENTATION
    fix_type = FixType.DOCUMENTATION

    def propose(self, work: FixWork) -> Iterator[Candidate]:
        for code in work.prior:
            yield from self.follow(work.sources, code)

    def follow(self, sources: Mapping[str, str], code: Candidate) -> Iterator[Candidate]:
        edits: dict[str, str | None] = {}
        for path, text in code.edits.items():
            before = sources.get(path)
            if text is None or before is None or not path.endswith(".py"):
                continue
            fresh = refresh_docstrings(before, text)
            if fresh != text:
                edits[path] = fresh
        if edits:
            yield Candidate(
                self.name,
                self.fix_type,
                f"{code.description}; docstrings updated to match",
                {**code.edits, **edits},
                code.cost,
            )
