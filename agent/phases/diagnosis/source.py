"""A source index: the functions of each Python file and the lines they span."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Function:
    file: str
    qualname: str
    start: int  # first line, decorators included
    end: int

    def contains(self, line: int) -> bool:
        return self.start <= line <= self.end


def functions_in(file: str, text: str) -> list[Function]:
    """Every function and method in `text`, innermost last; [] when the file does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    found: list[Function] = []
    _walk(tree, file, "", found)
    return found


def _walk(node: ast.AST, file: str, prefix: str, found: list[Function]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                found.append(Function(file, name, start, child.end_lineno or child.lineno))
            _walk(child, file, f"{name}.", found)
        else:
            _walk(child, file, prefix, found)


def index_sources(texts: Mapping[str, str]) -> dict[str, list[Function]]:
    return {path: functions_in(path, text) for path, text in texts.items()}


def function_at(index: Mapping[str, list[Function]], file: str, line: int) -> Function | None:
    """The innermost function containing a line, or None at module level."""
    best: Function | None = None
    for func in index.get(file, []):
        if func.contains(line) and (best is None or func.start >= best.start):
            best = func
    return best


def is_test_file(path: str) -> bool:
    """pytest's default discovery names, and anything under a tests/ or testing/ directory."""
    parts = path.split("/")
    name = parts[-1]
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or any(p in ("tests", "test", "testing") for p in parts[:-1])
    )


def python_files(paths: Iterable[str]) -> list[str]:
    return sorted(p for p in paths if p.endswith(".py"))
