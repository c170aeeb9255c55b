"""Performance templates: memoise a pure function, hoist loop-invariant work, set membership.

The gate keeps one of these only when the regressed test's timing is back within threshold.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from agent.phases.diagnosis.recommend import PERFORMANCE
from agent.phases.fix.base import Candidate, FixWork
from agent.phases.fix.edits import delete_lines, indent_of, insert_lines, replace_node, segment
from agent.records import FixType

_IMPURE_CALLS = {
    "print",
    "open",
    "input",
    "random",
    "time",
    "sleep",
    "write",
    "append",
    "extend",
    "pop",
    "update",
    "add",
    "remove",
    "insert",
    "setdefault",
    "clear",
    "now",
    "uuid4",
}
_CHEAP_PURE = {
    "len",
    "sorted",
    "set",
    "list",
    "tuple",
    "dict",
    "sum",
    "min",
    "max",
    "frozenset",
    "str",
    "int",
    "float",
    "abs",
    "round",
    "any",
    "all",
}


def _functions(tree: ast.Module) -> list[ast.FunctionDef]:
    return [n for n in tree.body if isinstance(n, ast.FunctionDef)]


def is_pure(func: ast.FunctionDef) -> bool:
    """No global state, no I/O, no mutation of arguments, no generators, hashable-looking args."""
    params = {a.arg for a in func.args.args + func.args.kwonlyargs}
    if func.args.vararg or func.args.kwarg or any(a.arg == "self" for a in func.args.args):
        return False
    for node in ast.walk(func):
        if isinstance(node, ast.Global | ast.Nonlocal | ast.Yield | ast.YieldFrom | ast.Await):
            return False
        if isinstance(node, ast.Call):
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else getattr(node.func, "id", "")
            )
            if name in _IMPURE_CALLS:
                return False
        if isinstance(node, ast.Attribute | ast.Subscript) and isinstance(node.ctx, ast.Store):
            base = node.value
            if isinstance(base, ast.Name) and base.id in params:
                return False
    return not any(
        isinstance(d, ast.Name | ast.Attribute | ast.Call) and "cache" in ast.unparse(d)
        for d in func.decorator_list
    )


def _with_import(text: str, tree: ast.Module) -> tuple[str, int]:
    """Add `import functools` after the docstring and __future__ imports; returns lines added."""
    if any(
        isinstance(n, ast.Import) and any(a.name == "functools" for a in n.names) for n in tree.body
    ):
        return text, 0
    at = 1
    for node in tree.body:
        is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        if is_doc or is_future:
            at = (node.end_lineno or node.lineno) + 1
        else:
            break
    return insert_lines(text, at, ["import functools"]), 1


def memoise(text: str, tree: ast.Module, names: set[str]) -> Iterator[tuple[str, str]]:
    for func in _functions(tree):
        if func.name in names and is_pure(func):
            with_import, shift = _with_import(text, tree)
            start = min([func.lineno, *(d.lineno for d in func.decorator_list)]) + shift
            new = insert_lines(
                with_import, start, [indent_of(text, func.lineno) + "@functools.cache"]
            )
            yield f"memoise {func.name} with functools.cache", new


def _assigned(nodes: list[ast.stmt]) -> set[str]:
    names = set()
    for stmt in nodes:
        for n in ast.walk(stmt):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                names.add(n.id)
    return names


def _loads(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _calls_only_pure(node: ast.AST) -> bool:
    calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
    return bool(calls) and all(
        isinstance(c.func, ast.Name) and c.func.id in _CHEAP_PURE for c in calls
    )


def hoist(text: str, tree: ast.Module, names: set[str]) -> Iterator[tuple[str, str]]:
    """Move `x = pure_call(invariant names)` out of a loop body when nothing in the loop changes
    its inputs and x is assigned only there."""
    for func in _functions(tree):
        if names and func.name not in names:
            continue
        for loop in (n for n in ast.walk(func) if isinstance(n, ast.For | ast.While)):
            changed = _assigned(loop.body) | (
                _assigned([loop]) if isinstance(loop, ast.For) else set()
            )
            for stmt in loop.body:
                if not (
                    isinstance(stmt, ast.Assign)
                    and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name)
                ):
                    continue
                target = stmt.targets[0].id
                others = [s for s in loop.body if s is not stmt]
                if (_loads(stmt.value) & changed) or target in _assigned(others):
                    continue
                if not _calls_only_pure(stmt.value):
                    continue
                line = segment(text, stmt)
                pad = indent_of(text, loop.lineno)
                end = stmt.end_lineno or stmt.lineno
                moved = delete_lines(text, stmt.lineno, end)
                yield (
                    f"hoist `{line}` out of the loop",
                    insert_lines(moved, loop.lineno, [pad + line]),
                )
            for node in ast.walk(loop):
                yield from _invariant_membership(text, func, loop, node, changed)


def _invariant_membership(
    text: str, func: ast.FunctionDef, loop: ast.For | ast.While, node: ast.AST, changed: set[str]
) -> Iterator[tuple[str, str]]:
    """`x in f(invariant)` inside a loop: compute the container once, as a set."""
    if not (
        isinstance(node, ast.Compare)
        and len(node.ops) == 1
        and isinstance(node.ops[0], ast.In | ast.NotIn)
    ):
        return
    right = node.comparators[0]
    if isinstance(right, ast.Name) or _loads(right) & changed:
        return
    name = "_selfheal_lookup"
    pad = indent_of(text, loop.lineno)
    replaced = replace_node(text, right, name)
    yield (
        f"compute {segment(text, right)} once as a set before the loop",
        insert_lines(replaced, loop.lineno, [f"{pad}{name} = set({segment(text, right)})"]),
    )


def set_membership(text: str, tree: ast.Module, names: set[str]) -> Iterator[tuple[str, str]]:
    """A list used only for `in` tests and appends becomes a set (add instead of append)."""
    for func in _functions(tree):
        if names and func.name not in names:
            continue
        for assign in (n for n in ast.walk(func) if isinstance(n, ast.Assign)):
            if not (
                len(assign.targets) == 1
                and isinstance(assign.targets[0], ast.Name)
                and isinstance(assign.value, ast.List)
                and not assign.value.elts
            ):
                continue
            var = assign.targets[0].id
            uses = _uses(func, var, assign)
            if uses is None or not uses[1]:
                continue
            new = text
            for call in sorted(uses[0], key=lambda c: (c.lineno, c.col_offset), reverse=True):
                assert isinstance(call.func, ast.Attribute)
                new = replace_node(new, call.func, f"{var}.add")
            new = replace_node(new, assign.value, "set()")
            yield f"make {var} a set (membership tests were linear)", new


def _uses(func: ast.FunctionDef, var: str, assign: ast.Assign) -> tuple[list[ast.Call], int] | None:
    """(append calls, membership tests) when those are the only uses of `var`; else None."""
    appends: list[ast.Call] = []
    tests = 0
    parents = {c: p for p in ast.walk(func) for c in ast.iter_child_nodes(p)}
    for n in ast.walk(func):
        if not (isinstance(n, ast.Name) and n.id == var) or n is assign.targets[0]:
            continue
        parent = parents.get(n)
        if isinstance(parent, ast.Attribute) and parent.attr == "append":
            call = parents.get(parent)
            if isinstance(call, ast.Call) and len(call.args) == 1:
                appends.append(call)
                continue
        if (
            isinstance(parent, ast.Compare)
            and n in parent.comparators
            and all(isinstance(o, ast.In | ast.NotIn) for o in parent.ops)
        ):
            tests += 1
            continue
        return None
    return appends, tests


class PerformanceTemplates:
    """The three templates on the functions the profile names (or the suspicious ones)."""

    name = PERFORMANCE
    fix_type = FixType.CODE

    def propose(self, work: FixWork) -> Iterator[Candidate]:
        targets: dict[str, set[str]] = {}
        for loc in work.hot:
            targets.setdefault(loc.file, set()).add(loc.function.rsplit(".", 1)[-1])
        for file, line in work.suspicious[:10]:
            text = work.sources.get(file, "")
            for func in _functions(_parse(text)):
                if func.lineno <= line <= (func.end_lineno or func.lineno):
                    targets.setdefault(file, set()).add(func.name)
        cost = 0
        for file, names in sorted(targets.items()):
            source = work.sources.get(file)
            if source is None:
                continue
            tree = _parse(source)
            for make in (set_membership, hoist, memoise):
                for desc, new in make(source, tree, names):
                    cost += 1
                    yield Candidate(
                        self.name, self.fix_type, f"{desc} in {file}", {file: new}, cost
                    )


def _parse(text: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])
