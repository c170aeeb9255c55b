"""Test fixes: a regression test pinning the failing input, characterisation tests."""

from __future__ import annotations

import ast

from agent.phases.diagnosis.pytest_exec import Frame
from agent.phases.fix.testfix import CharacterisationTests, RegressionTest, module_name
from tests.agent.phases.fix_kit import work


def test_module_names() -> None:
    assert module_name("pkg/mod.py") == "pkg.mod"
    assert module_name("src/pkg/__init__.py") == "pkg"
    assert module_name("scripts/my-tool.py") is None
    assert module_name("README.md") is None


def test_regression_test_calls_the_failing_input() -> None:
    frame = Frame("app/ratios.py", 4, "ratio", {"ok": "0", "total": "0"})
    (cand,) = RegressionTest().propose(
        work({"app/ratios.py": ""}, exception="ZeroDivisionError", frames=(frame,))
    )
    ((path, text),) = cand.edits.items()
    assert path.startswith("tests/test_selfheal_ratio") and text is not None
    tree = ast.parse(text)
    assert "from app.ratios import ratio" in text and "ratio(ok=0, total=0)" in text
    assert any(isinstance(n, ast.FunctionDef) and n.name.startswith("test_") for n in tree.body)


def test_no_regression_test_for_assertion_failures_or_unreprable_input() -> None:
    frame = Frame("m.py", 1, "f", {"x": "<object at 0x1>"})
    assert (
        list(RegressionTest().propose(work({}, exception="AssertionError", frames=(frame,)))) == []
    )
    assert list(RegressionTest().propose(work({}, exception="KeyError", frames=(frame,)))) == []


def test_characterisation_tests_assert_observed_values() -> None:
    obs = {"lib/conf.py::defaults": "{'retries': 3}", "lib/conf.py::broken": "<object>"}
    (cand,) = CharacterisationTests().propose(work({}, observations=obs))
    (text,) = cand.edits.values()
    assert text is not None
    assert "assert defaults() == {'retries': 3}" in text and "broken" not in text
    ast.parse(text)
