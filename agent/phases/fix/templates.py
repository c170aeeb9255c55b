"""Repair templates for common failure shapes, applied with ast at the suspicious lines."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator

from agent.phases.diagnosis.recommend import REPAIR_TEMPLATE
from agent.phases.fix.base import Candidate, FixWork
from agent.phases.fix.edits import (
    enclosing_function,
    indent_of,
    insert_lines,
    replace_node,
    segment,
    statement_at,
    walk_at_line,
)
from agent.records import FixType

TOP_LINES = 6
Edit = tuple[str, str, int]  # (description, new text, cost)
Template = Callable[[str, ast.Module, int, str], Iterator[Edit]]

# Exceptions that point at one template first; others still get every template, later.
_HINTS = {
    "ZeroDivisionError": "zero_division",
    "KeyError": "dict_get",
    "IndexError": "bounds_check",
    "AttributeError": "none_guard",
    "TypeError": "none_guard",
}


def _guard(text: str, stmt: ast.stmt, condition: str, tree: ast.Module, line: int) -> str | None:
    """Insert `if condition: return None` (or `continue` inside a loop) before a statement."""
    func = enclosing_function(tree, line)
    if func is None:
        return None
    loop = _innermost_loop(func, line)
    exit_stmt = "continue" if loop is not None else _default_return(func)
    pad = indent_of(text, stmt.lineno)
    return insert_lines(text, stmt.lineno, [f"{pad}if {condition}:", f"{pad}    {exit_stmt}"])


def _innermost_loop(func: ast.AST, line: int) -> ast.AST | None:
    best = None
    for node in ast.walk(func):
        if isinstance(node, ast.For | ast.While) and node.lineno < line <= (node.end_lineno or 0):
            best = node
    return best


def _default_return(func: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    ann = ast.unparse(func.returns) if func.returns is not None else ""
    defaults = {"int": "0", "float": "0.0", "str": '""', "bool": "False", "list": "[]"}
    for prefix, value in defaults.items():
        if ann.startswith(prefix):
            return f"return {value}"
    return "return None"


def zero_division(text: str, tree: ast.Module, line: int, exc: str) -> Iterator[Edit]:
    for node in walk_at_line(tree, line):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div | ast.FloorDiv | ast.Mod):
            den = segment(text, node.right)
            whole = segment(text, node)
            yield (
                f"guard {whole} against a zero divisor",
                replace_node(text, node, f"({whole} if {den} else 0)"),
                0,
            )
            found = statement_at(tree, line)
            if found is not None:
                guarded = _guard(text, found[0], f"not {den}", tree, line)
                if guarded:
                    yield f"return early when {den} is zero", guarded, 1


def dict_get(text: str, tree: ast.Module, line: int, exc: str) -> Iterator[Edit]:
    for node in walk_at_line(tree, line):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and not isinstance(node.slice, ast.Slice)
        ):
            base, key = segment(text, node.value), segment(text, node.slice)
            yield f"{base}.get({key})", replace_node(text, node, f"{base}.get({key})"), 0
            yield f"{base}.get({key}, 0)", replace_node(text, node, f"{base}.get({key}, 0)"), 1


def bounds_check(text: str, tree: ast.Module, line: int, exc: str) -> Iterator[Edit]:
    for node in walk_at_line(tree, line):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and not isinstance(node.slice, ast.Slice | ast.Constant)
        ):
            base, idx = segment(text, node.value), segment(text, node.slice)
            whole = segment(text, node)
            guarded = f"({whole} if -len({base}) <= {idx} < len({base}) else None)"
            yield f"bounds check on {whole}", replace_node(text, node, guarded), 0
            found = statement_at(tree, line)
            if found is not None:
                early = _guard(
                    text, found[0], f"not -len({base}) <= {idx} < len({base})", tree, line
                )
                if early:
                    yield f"return early when {idx} is out of range", early, 1


def none_guard(text: str, tree: ast.Module, line: int, exc: str) -> Iterator[Edit]:
    found = statement_at(tree, line)
    if found is None:
        return
    seen: set[str] = set()
    for node in walk_at_line(tree, line):
        target = None
        if isinstance(node, ast.Attribute | ast.Subscript) and isinstance(node.value, ast.Name):
            target = node.value.id
        elif isinstance(node, ast.Call):
            target = next((a.id for a in node.args if isinstance(a, ast.Name)), None)
        if target and target not in seen and target != "self":
            seen.add(target)
            guarded = _guard(text, found[0], f"{target} is None", tree, line)
            if guarded:
                yield f"guard against {target} being None", guarded, 0


_FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}


def boundary(text: str, tree: ast.Module, line: int, exc: str) -> Iterator[Edit]:
    for node in walk_at_line(tree, line):
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                flipped = _FLIP.get(type(op))
                if flipped is None:
                    continue
                new = ast.Compare(node.left, list(node.ops), node.comparators)
                new.ops[i] = flipped()
                yield (
                    f"boundary {ast.unparse(node)} -> {ast.unparse(new)}",
                    replace_node(text, node, ast.unparse(new)),
                    0,
                )


def missing_return(text: str, tree: ast.Module, line: int, exc: str) -> Iterator[Edit]:
    func = enclosing_function(tree, line)
    if func is None or any(
        isinstance(n, ast.Return) and n.value is not None for n in ast.walk(func)
    ):
        return
    last = func.body[-1]
    pad = indent_of(text, last.lineno)
    end = (last.end_lineno or last.lineno) + 1
    if isinstance(last, ast.Expr) and not isinstance(last.value, ast.Constant):
        yield (
            "return the last expression",
            replace_node(text, last, f"return {segment(text, last.value)}"),
            0,
        )
    assigned = [
        t.id
        for n in func.body
        if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign)
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        if isinstance(t, ast.Name)
    ]
    for cost, name in enumerate(reversed(dict.fromkeys(assigned))):
        yield f"return {name}", insert_lines(text, end, [f"{pad}return {name}"]), cost + 1


def swapped_arguments(text: str, tree: ast.Module, line: int, exc: str) -> Iterator[Edit]:
    for node in walk_at_line(tree, line):
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            args = [segment(text, a) for a in node.args]
            for i in range(len(args) - 1):
                swapped = list(node.args)
                swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
                call = ast.Call(node.func, swapped, node.keywords)
                yield (
                    f"swap arguments {args[i]} and {args[i + 1]}",
                    replace_node(text, node, ast.unparse(call)),
                    0,
                )
        elif isinstance(node, ast.BinOp) and isinstance(
            node.op, ast.Sub | ast.Div | ast.FloorDiv | ast.Mod | ast.Pow
        ):
            flipped = ast.BinOp(node.right, node.op, node.left)
            yield (
                f"swap operands of {ast.unparse(node)}",
                replace_node(text, node, ast.unparse(flipped)),
                1,
            )


def _containers(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names used as collections: iterated, indexed, measured, or bound to a display or to a
    collection-building call. A collection rarely stands in for a scalar, or the reverse."""
    builders = {"list", "dict", "set", "tuple", "sorted", "reversed", "zip", "range", "enumerate"}
    found: set[str] = set()
    for n in ast.walk(func):
        if isinstance(n, ast.For | ast.comprehension) and isinstance(n.iter, ast.Name):
            found.add(n.iter.id)
        elif isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name):
            found.add(n.value.id)
        elif (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)
            and n.func.id in _TAKES_ITERABLE
        ):
            found.update(a.id for a in n.args if isinstance(a, ast.Name))
        elif isinstance(n, ast.Assign) and isinstance(n.value, (*_DISPLAYS, ast.Call)):
            call = n.value
            if isinstance(call, ast.Call) and not (
                isinstance(call.func, ast.Name) and call.func.id in builders
            ):
                continue
            found.update(t.id for t in n.targets if isinstance(t, ast.Name))
    return found


# Built-ins whose arguments are collections (range's are numbers).
_TAKES_ITERABLE = {
    *("len", "list", "dict", "set", "tuple", "sorted", "reversed", "zip", "enumerate"),
    *("sum", "min", "max", "any", "all", "frozenset"),
}
_DISPLAYS = (ast.List, ast.Dict, ast.Set, ast.Tuple, ast.ListComp, ast.DictComp, ast.SetComp)


def wrong_variable(text: str, tree: ast.Module, line: int, exc: str) -> Iterator[Edit]:
    """Each other name in scope of the same shape (collection or not), the most recently
    assigned first."""
    func = enclosing_function(tree, line)
    if func is None:
        return
    bound: dict[str, int] = {a.arg: func.lineno for a in func.args.args + func.args.kwonlyargs}
    for n in ast.walk(func):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.lineno < line:
            bound[n.id] = max(bound.get(n.id, 0), n.lineno)
    names = sorted(bound, key=lambda name: -bound[name])
    containers = _containers(func)
    for node in walk_at_line(tree, line):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in bound:
            shape = node.id in containers
            for other in names:
                if other != node.id and (other in containers) == shape:
                    yield f"use {other} instead of {node.id}", replace_node(text, node, other), 1


_GUARDS = frozenset({"zero_division", "dict_get", "bounds_check", "none_guard"})
TEMPLATES: dict[str, Template] = {
    "zero_division": zero_division,
    "dict_get": dict_get,
    "bounds_check": bounds_check,
    "none_guard": none_guard,
    "boundary": boundary,
    "missing_return": missing_return,
    "swapped_arguments": swapped_arguments,
    "wrong_variable": wrong_variable,
}


class RepairTemplates:
    """Every template at the frame line and the top suspicious lines; the exception's own
    template goes first."""

    name = REPAIR_TEMPLATE
    fix_type = FixType.CODE

    def propose(self, work: FixWork) -> Iterator[Candidate]:
        first = _HINTS.get(work.exception)
        order = sorted(TEMPLATES, key=lambda n: n != first)
        if work.exception in ("", "AssertionError"):
            # A guard changes behaviour only on a path that raises; a wrong value is not one.
            order = [n for n in order if n not in _GUARDS]
        for rank, (file, line) in enumerate(_lines(work)):
            text = work.sources.get(file)
            if text is None:
                continue
            try:
                tree = ast.parse(text)
            except SyntaxError:
                continue
            for t_index, name in enumerate(order):
                for desc, new, cost in TEMPLATES[name](text, tree, line, work.exception):
                    if new != text:
                        total = rank * 10 + t_index + cost
                        yield Candidate(
                            self.name,
                            self.fix_type,
                            f"{name}: {desc} at {file}:{line}",
                            {file: new},
                            total,
                        )


def _lines(work: FixWork) -> list[tuple[str, int]]:
    own = [(f.file, f.line) for f in reversed(work.frames)]
    return list(dict.fromkeys(own + list(work.suspicious)))[:TOP_LINES]
