"""Mutation search at the top-ranked lines: operators, constants, conditions, statements."""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator

from agent.phases.diagnosis.recommend import MUTATION
from agent.phases.fix.base import Candidate, FixWork
from agent.phases.fix.edits import (
    delete_lines,
    enclosing_function,
    indent_of,
    insert_lines,
    parses,
    replace_node,
    walk_at_line,
)
from agent.records import FixType

TOP_LINES = 8
NEARBY = 8  # statements within this many lines may be copied next to a suspicious line
MAX_CANDIDATES = 400

_BINOPS: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
    ast.Add: (ast.Sub, ast.Mult),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.Add, ast.Div, ast.Pow),
    ast.Div: (ast.FloorDiv, ast.Mult),
    ast.FloorDiv: (ast.Div, ast.Mod),
    ast.Mod: (ast.FloorDiv,),
    ast.Pow: (ast.Mult,),
}
_CMPOPS: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.Gt, ast.GtE),
    ast.LtE: (ast.Lt, ast.GtE, ast.Gt),
    ast.Gt: (ast.GtE, ast.Lt, ast.LtE),
    ast.GtE: (ast.Gt, ast.LtE, ast.Lt),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
Mutant = tuple[int, str, str]  # (cost class, description, new text)


def _expression_mutants(text: str, tree: ast.Module, line: int) -> Iterator[Mutant]:
    for node in walk_at_line(tree, line):
        if isinstance(node, ast.BinOp):
            for op in _BINOPS.get(type(node.op), ()):
                yield _swap(text, node, ast.BinOp(node.left, op(), node.right), 0)
            # Dropping one operand undoes a stray "+ 1" or "* factor".
            yield (
                2,
                f"keep only {ast.unparse(node.left)}",
                replace_node(text, node, ast.unparse(node.left)),
            )
        elif isinstance(node, ast.AugAssign):
            for op in _BINOPS.get(type(node.op), ()):
                new = ast.AugAssign(node.target, op(), node.value)
                yield _swap(text, node, new, 0)
        elif isinstance(node, ast.Compare):
            for i, cmp in enumerate(node.ops):
                for other in _CMPOPS.get(type(cmp), ()):
                    ops = list(node.ops)
                    ops[i] = other()
                    yield _swap(text, node, ast.Compare(node.left, ops, node.comparators), 0)
        elif isinstance(node, ast.BoolOp):
            other_op: ast.boolop = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            yield _swap(text, node, ast.BoolOp(other_op, node.values), 1)
        elif isinstance(node, ast.Constant):
            yield from _constant_mutants(text, node)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield (
                1,
                f"drop not in {ast.unparse(node)}",
                replace_node(text, node, ast.unparse(node.operand)),
            )


def _constant_mutants(text: str, node: ast.Constant) -> Iterator[Mutant]:
    value = node.value
    if isinstance(value, bool):
        yield _swap(text, node, ast.Constant(not value), 0)
    elif isinstance(value, int):
        for new in (value + 1, value - 1):
            yield _swap(text, node, ast.Constant(new), 0)
    elif isinstance(value, float):
        yield _swap(text, node, ast.Constant(value + 1), 1)


def _swap(text: str, old: ast.AST, new: ast.AST, cost: int) -> Mutant:
    ast.copy_location(new, old)
    before, after = ast.unparse(old), ast.unparse(new)
    return cost, f"{before} -> {after}", replace_node(text, old, after)


def _int_positions(node: ast.AST) -> list[ast.expr]:
    """Sub-expressions that count or index: range() arguments, slice bounds, subscripts and
    comparison operands (constants excluded: they get their own ±1)."""
    found: list[ast.expr] = []
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        found.extend(node.args)
    elif isinstance(node, ast.Slice):
        found.extend(e for e in (node.lower, node.upper) if e is not None)
    elif isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Slice):
        found.append(node.slice)
    elif isinstance(node, ast.Compare):
        found.extend([node.left, *node.comparators])
    return [e for e in found if not isinstance(e, ast.Constant)]


def _off_by_one_mutants(text: str, tree: ast.Module, line: int) -> Iterator[Mutant]:
    seen: set[tuple[int, int]] = set()
    for node in walk_at_line(tree, line):
        for expr in _int_positions(node):
            where = (expr.col_offset, expr.end_col_offset or 0)
            if where in seen or isinstance(expr, ast.Starred):
                continue
            seen.add(where)
            for op in (ast.Add(), ast.Sub()):
                new = ast.BinOp(copy.deepcopy(expr), op, ast.Constant(1))
                yield _swap(text, expr, new, 1)


def _condition_mutants(text: str, tree: ast.Module, line: int) -> Iterator[Mutant]:
    for node in walk_at_line(tree, line):
        if isinstance(node, ast.If | ast.While) and not isinstance(node.test, ast.UnaryOp):
            neg = ast.UnaryOp(ast.Not(), copy.deepcopy(node.test))
            yield (
                1,
                f"negate {ast.unparse(node.test)}",
                replace_node(text, node.test, ast.unparse(neg)),
            )


def _statement_mutants(text: str, tree: ast.Module, line: int) -> Iterator[Mutant]:
    func = enclosing_function(tree, line)
    if func is None:
        return
    stmts = {s.lineno: s for s in ast.walk(func) if isinstance(s, ast.stmt) and s is not func}
    here = stmts.get(line)
    if here is not None and not isinstance(here, ast.Return | ast.FunctionDef):
        end = here.end_lineno or here.lineno
        yield 3, f"delete line {line}", delete_lines(text, line, end)
    if here is None:
        return
    pad = indent_of(text, line)
    for other_line, other in sorted(stmts.items(), key=lambda kv: abs(kv[0] - line)):
        if other is here or abs(other_line - line) > NEARBY:
            continue
        if isinstance(other, ast.Return | ast.If | ast.For | ast.While | ast.With | ast.Try):
            continue
        if (other.end_lineno or other.lineno) != other.lineno:
            continue  # single-line statements only: copied blocks rarely fit elsewhere
        code = ast.unparse(other)
        for where, at in (("before", line), ("after", (here.end_lineno or line) + 1)):
            yield 4, f"insert `{code}` {where} line {line}", insert_lines(text, at, [pad + code])


def _call_mutants(text: str, tree: ast.Module, line: int) -> Iterator[Mutant]:
    """A missing call: wrap a variable in a one-argument function of this module, or one the
    module already calls on something else (the enclosing function excluded)."""
    called = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and len(n.args) == 1
    }
    defined = {
        f.name
        for f in tree.body
        if isinstance(f, ast.FunctionDef) and len(f.args.args) - len(f.args.defaults) == 1
    }
    here = enclosing_function(tree, line)
    callees = sorted((called | defined) - {here.name if here else ""})
    for node in walk_at_line(tree, line):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in callees:
            for fn in callees:
                yield 4, f"call {fn}({node.id})", replace_node(text, node, f"{fn}({node.id})")


def mutants_at(text: str, line: int) -> Iterator[Mutant]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return
    yield from _expression_mutants(text, tree, line)
    yield from _off_by_one_mutants(text, tree, line)
    yield from _condition_mutants(text, tree, line)
    yield from _statement_mutants(text, tree, line)
    yield from _call_mutants(text, tree, line)


class MutationSearch:
    """Mutants of the top-ranked lines, cheapest class first, de-duplicated, syntax-checked."""

    name = MUTATION
    fix_type = FixType.CODE

    def propose(self, work: FixWork) -> Iterator[Candidate]:
        lines = list(dict.fromkeys([*work.suspicious, *((f.file, f.line) for f in work.frames)]))
        found: list[tuple[int, int, str, str, str]] = []
        seen: set[str] = set()
        for rank, (file, line) in enumerate(lines[:TOP_LINES]):
            text = work.sources.get(file)
            if text is None:
                continue
            for cost, desc, new in mutants_at(text, line):
                if new == text or new in seen or not parses(new):
                    continue
                seen.add(new)
                found.append((cost, rank, file, desc, new))
        # Cheapest class first, then the most suspicious line.
        found.sort(key=lambda m: (m[0], m[1]))
        for i, (cost, _rank, file, desc, new) in enumerate(found[:MAX_CANDIDATES]):
            yield Candidate(self.name, self.fix_type, f"{desc} at {file}", {file: new}, i + cost)
