"""Performance templates: memoise pure functions, hoist invariant work, sets for membership."""

from __future__ import annotations

from agent.phases.fix.perf import PerformanceTemplates, is_pure
from agent.records import AnomalyKind, CodeLocation
from tests.agent.phases.fix_kit import run, work


def _cands(src: str, function: str) -> dict[str, str]:
    hot = (CodeLocation("m.py", function, 1),)
    found = PerformanceTemplates().propose(
        work({"m.py": src}, kind=AnomalyKind.PERFORMANCE, hot=hot)
    )
    return {c.description.split(" in m.py")[0]: str(c.edits["m.py"]) for c in found}


FIB = '"""Numbers."""\n\n\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n'


def test_memoise_adds_functools_cache_and_keeps_results() -> None:
    cands = _cands(FIB, "fib")
    new = cands["memoise fib with functools.cache"]
    assert "import functools" in new and "@functools.cache\ndef fib" in new
    assert run(new, "fib", 60) == 1548008755920  # only finishes quickly when memoised


def test_impure_functions_are_not_memoised() -> None:
    import ast

    src = "def log(x, out):\n    out.append(x)\n    return x\n"
    func = ast.parse(src).body[0]
    assert isinstance(func, ast.FunctionDef) and not is_pure(func)
    assert not any(k.startswith("memoise") for k in _cands(src, "log"))


def test_list_used_only_for_membership_becomes_a_set() -> None:
    src = (
        "def dedupe(xs):\n    seen = []\n    out = []\n    for x in xs:\n"
        "        if x not in seen:\n            seen.append(x)\n            out.append(x)\n"
        "    return out\n"
    )
    new = _cands(src, "dedupe")["make seen a set (membership tests were linear)"]
    assert "seen = set()" in new and "seen.add(x)" in new and "out.append(x)" in new
    assert run(new, "dedupe", [3, 1, 3, 2]) == [3, 1, 2]


def test_returned_lists_stay_lists() -> None:
    src = (
        "def f(xs):\n    seen = []\n    for x in xs:\n        if x not in seen:\n"
        "            seen.append(x)\n    return seen\n"
    )
    assert not any(k.startswith("make seen") for k in _cands(src, "f"))


def test_hoist_loop_invariant_pure_call() -> None:
    src = (
        "def ranks(scores):\n    out = []\n    for s in scores:\n"
        "        order = sorted(scores, reverse=True)\n        out.append(order.index(s) + 1)\n"
        "    return out\n"
    )
    cands = _cands(src, "ranks")
    new = cands["hoist `order = sorted(scores, reverse=True)` out of the loop"]
    assert new.index("order = sorted") < new.index("for s in scores")
    assert run(new, "ranks", [10, 30, 20]) == [3, 1, 2]


def test_loop_variant_work_is_not_hoisted() -> None:
    src = (
        "def f(xs):\n    out = []\n    for x in xs:\n        y = len(x)\n        out.append(y)\n"
        "    return out\n"
    )
    assert not any(k.startswith("hoist") for k in _cands(src, "f"))


def test_invariant_container_in_a_loop_condition_is_computed_once() -> None:
    src = (
        "def keep(xs, allowed):\n    out = []\n    for x in xs:\n"
        "        if x in list(allowed):\n            out.append(x)\n    return out\n"
    )
    cands = _cands(src, "keep")
    new = next(v for k, v in cands.items() if k.startswith("compute list(allowed) once"))
    assert run(new, "keep", [1, 2, 3], (3, 1)) == [1, 3]
