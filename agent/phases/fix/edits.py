"""Precise source edits: replace an AST node's exact span, insert lines, swap text blocks."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence


def node_span(text: str, node: ast.AST) -> tuple[int, int]:
    """Character offsets [start, end) of a node (ast columns are UTF-8 byte offsets)."""
    lines = text.splitlines(keepends=True)
    start = _offset(lines, node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = _offset(lines, node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return start, end


def _offset(lines: Sequence[str], lineno: int | None, col: int | None) -> int:
    if lineno is None or col is None:
        raise ValueError("node has no position")
    before = sum(len(line) for line in lines[: lineno - 1])
    line = lines[lineno - 1] if lineno - 1 < len(lines) else ""
    return before + len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))


def replace_node(text: str, node: ast.AST, new: str) -> str:
    start, end = node_span(text, node)
    return text[:start] + new + text[end:]


def segment(text: str, node: ast.AST) -> str:
    start, end = node_span(text, node)
    return text[start:end]


def indent_of(text: str, lineno: int) -> str:
    line = text.splitlines()[lineno - 1]
    return line[: len(line) - len(line.lstrip())]


def insert_lines(text: str, before_line: int, new_lines: Sequence[str]) -> str:
    """Insert whole lines (without newlines) before 1-based `before_line`."""
    lines = text.splitlines(keepends=True)
    block = "".join(f"{line}\n" for line in new_lines)
    return "".join(lines[: before_line - 1]) + block + "".join(lines[before_line - 1 :])


def delete_lines(text: str, first: int, last: int) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(lines[: first - 1]) + "".join(lines[last:])


def replace_block(
    text: str, old: Sequence[str], new: Sequence[str], near: int = 1
) -> tuple[str, int] | None:
    """Replace the occurrence of the line block `old` nearest to line `near` with `new`.

    Returns the new text and the 1-based line where the block was found, or None when the
    block is not in the text. Lines are compared without their line endings.
    """
    lines = text.splitlines(keepends=True)
    bare = [line.rstrip("\r\n") for line in lines]
    found = _nearest(bare, [o.rstrip("\r\n") for o in old], near)
    if found is None:
        return None
    ending = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    block = [f"{n.rstrip(chr(13) + chr(10))}{ending}" for n in new]
    tail_no_newline = found + len(old) == len(lines) and lines and not lines[-1].endswith("\n")
    if tail_no_newline and block:
        block[-1] = block[-1].rstrip("\r\n")
    return "".join(lines[:found]) + "".join(block) + "".join(lines[found + len(old) :]), found + 1


def _nearest(lines: Sequence[str], block: Sequence[str], near: int) -> int | None:
    if not block:
        return min(max(near - 1, 0), len(lines))
    starts = [i for i in range(len(lines) - len(block) + 1) if lines[i : i + len(block)] == block]
    if not starts:
        return None
    return min(starts, key=lambda i: abs(i - (near - 1)))


def parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


def walk_at_line(tree: ast.AST, line: int) -> Iterator[ast.AST]:
    """Nodes that start on `line`, outermost first."""
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) == line:
            yield node


def enclosing_function(tree: ast.AST, line: int) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    best: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            end = node.end_lineno or node.lineno
            if node.lineno <= line <= end and (best is None or node.lineno >= best.lineno):
                best = node
    return best


def statement_at(tree: ast.AST, line: int) -> tuple[ast.stmt, list[ast.stmt]] | None:
    """The innermost statement starting on `line`, with the body list that holds it."""
    found: tuple[ast.stmt, list[ast.stmt]] | None = None
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if not isinstance(body, list):
                continue
            for stmt in body:
                if isinstance(stmt, ast.stmt) and stmt.lineno == line:
                    found = (stmt, body)
    return found
