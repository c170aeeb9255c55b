"""Mutation search: operators, constants, conditions, statements; cheapest first, deduplicated."""

from __future__ import annotations

import ast

from agent.phases.fix.mutation import MutationSearch, mutants_at
from tests.agent.phases.fix_kit import run, work


def _texts(src: str, line: int) -> list[str]:
    return [new for _cost, _desc, new in mutants_at(src, line)]


def test_operator_constant_and_comparison_mutants() -> None:
    texts = _texts("def f(a, b):\n    return a + b > 1\n", 2)
    assert "def f(a, b):\n    return a - b > 1\n" in texts
    assert "def f(a, b):\n    return a + b >= 1\n" in texts
    assert "def f(a, b):\n    return a + b > 2\n" in texts


def test_condition_negation_and_statement_deletion() -> None:
    src = "def f(x):\n    y = x\n    if x > 0:\n        y = -x\n    return y\n"
    assert any("if not x > 0:" in t for t in _texts(src, 3))
    assert "def f(x):\n    y = x\n    if x > 0:\n        y = -x\n    return y\n" not in _texts(
        src, 4
    )
    assert any("y = -x" not in t for t in _texts(src, 4))


def test_statement_insertion_copies_nearby_code() -> None:
    src = "def f(xs):\n    xs = list(xs)\n    xs.sort()\n    return xs[0]\n"
    inserted = [t for c, d, t in mutants_at(src, 3) if d.startswith("insert")]
    assert inserted and all(ast.parse(t) for t in inserted)


def test_candidates_are_unique_parse_and_cheapest_first() -> None:
    src = "def f(a, b):\n    c = a * b\n    return c + 1\n"
    cands = list(MutationSearch().propose(work({"m.py": src}, (("m.py", 3), ("m.py", 2)))))
    texts = [c.edits["m.py"] for c in cands]
    assert len(texts) == len(set(texts))
    assert all(ast.parse(str(t)) for t in texts)
    assert [c.cost for c in cands] == sorted(c.cost for c in cands)
    assert "deletes" not in cands[0].description  # operator swaps before statement edits


def test_search_finds_an_off_by_one() -> None:
    src = "def total(n):\n    s = 0\n    for i in range(1, n):\n        s += i\n    return s\n"
    cands = MutationSearch().propose(work({"m.py": src}, (("m.py", 3), ("m.py", 4))))
    fixed = [c for c in cands if _behaves(str(c.edits["m.py"]))]
    assert fixed


def _behaves(text: str) -> bool:
    try:
        return run(text, "total", 4) == 10 and run(text, "total", 1) == 1
    except Exception:
        return False


def test_missing_call_of_a_helper_defined_in_the_module() -> None:
    src = (
        "def clean(w):\n    return w.strip().lower()\n\n\n"
        "def count(words):\n    out = {}\n    for raw in words:\n        w = raw\n"
        "        out[w] = out.get(w, 0) + 1\n    return out\n"
    )
    assert any("w = clean(raw)" in t for t in _texts(src, 8))
    assert not any("count(raw)" in t for t in _texts(src, 8))  # not the function itself
