"""Repair templates: each failure shape has a template whose candidate fixes it."""

from __future__ import annotations

import pytest

from agent.phases.diagnosis.pytest_exec import Frame
from agent.phases.fix.templates import RepairTemplates
from tests.agent.phases.fix_kit import run, work


def _candidates(src: str, line: int, exception: str = "") -> list[str]:
    frames = (Frame("m.py", line, "f"),) if exception else ()
    found = RepairTemplates().propose(
        work({"m.py": src}, (("m.py", line),), exception=exception, frames=frames)
    )
    return [str(c.edits["m.py"]) for c in found]


def _fixed_by_some(src: str, line: int, exception: str, name: str, cases: list[tuple]) -> bool:
    for cand in _candidates(src, line, exception):
        try:
            if all(run(cand, name, *args) == want for *args, want in cases):
                return True
        except Exception:
            continue
    return False


def test_zero_division_guard() -> None:
    src = "def ratio(a, b):\n    return a / b\n"
    assert _fixed_by_some(src, 2, "ZeroDivisionError", "ratio", [(1, 0, 0), (1, 2, 0.5)])


def test_dict_get() -> None:
    src = "PRICES = {'a': 3}\n\n\ndef price(name):\n    return PRICES[name]\n"
    found = _candidates(src, 5, "KeyError")
    assert "PRICES.get(name)" in found[0]
    assert _fixed_by_some(src, 5, "KeyError", "price", [("zz", 0), ("a", 3)])


def test_bounds_check() -> None:
    src = "def last(items, i):\n    return items[i]\n"
    assert _fixed_by_some(src, 2, "IndexError", "last", [([], 0, None), ([1, 2], 1, 2)])


def test_none_guard_returns_early_and_skips_in_loops() -> None:
    src = "def size(text):\n    return text.strip()\n"
    assert _fixed_by_some(src, 2, "AttributeError", "size", [(None, None), (" a ", "a")])
    loop = "def total(rows):\n    s = 0\n    for r in rows:\n        s += r.count\n    return s\n"
    assert any("continue" in c for c in _candidates(loop, 4, "AttributeError"))


def test_boundary() -> None:
    src = "def adult(age):\n    return age > 18\n"
    assert _fixed_by_some(src, 2, "", "adult", [(18, True), (17, False)])


def test_missing_return() -> None:
    src = "def build(keys):\n    index = {}\n    for k in keys:\n        index[k] = 1\n"
    assert _fixed_by_some(src, 4, "", "build", [(["a"], {"a": 1})])


def test_swapped_arguments() -> None:
    src = (
        "def clamp(v, lo, hi):\n    return max(lo, min(v, hi))\n\n\ndef vol(x):\n"
        "    return clamp(x, 100, 0)\n"
    )
    assert _fixed_by_some(src, 6, "", "vol", [(150, 100), (50, 50), (-1, 0)])


def test_wrong_variable() -> None:
    src = "def mean(xs):\n    total = sum(xs)\n    count = len(xs)\n    return total / total\n"
    assert _fixed_by_some(src, 4, "", "mean", [([2, 4], 3)])


@pytest.mark.parametrize("exception", ["ZeroDivisionError", "KeyError", "IndexError"])
def test_the_exceptions_own_template_comes_first(exception: str) -> None:
    src = "def f(d, k, n):\n    return d[k] / n\n"
    found = list(
        RepairTemplates().propose(
            work(
                {"m.py": src}, (("m.py", 2),), exception=exception, frames=(Frame("m.py", 2, "f"),)
            )
        )
    )
    first = found[0].description.split(":")[0]
    assert (
        first
        == {
            "ZeroDivisionError": "zero_division",
            "KeyError": "dict_get",
            "IndexError": "bounds_check",
        }[exception]
    )


def test_unparsable_source_yields_nothing() -> None:
    assert _candidates("def broken(:\n", 1, "KeyError") == []


def test_wrong_variable_keeps_shape_and_prefers_recent_names() -> None:
    src = (
        "def gap(values):\n    ordered = sorted(values)\n    best = 0\n"
        "    for a, b in zip(ordered, ordered[1:]):\n        d = b - a\n        best = b\n"
        "    return best\n"
    )
    found = [
        c.description
        for c in RepairTemplates().propose(work({"m.py": src}, (("m.py", 6),)))
        if c.description.startswith("wrong_variable")
    ]
    assert found[0].startswith("wrong_variable: use d instead of b")
    assert not any("use values" in d or "use ordered" in d for d in found)


def test_guards_are_not_proposed_for_a_wrong_value() -> None:
    src = "def pick(d, k):\n    return d[k] / 2\n"
    found = [
        c.description.split(":")[0]
        for c in RepairTemplates().propose(work({"m.py": src}, (("m.py", 2),)))
    ]
    assert "dict_get" not in found and "zero_division" not in found
    assert "swapped_arguments" in found
