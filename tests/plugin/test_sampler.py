"""In-process timing re-runs: every suspect gets its runs, across modules, and nothing is logged."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_selfheal.sampler import InProcessSampler


class _SampleAtEnd:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.result: Any = None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.result = InProcessSampler(session)(list(self.counts), self.counts)


def test_samples_across_modules_with_module_fixtures(pytester: pytest.Pytester) -> None:
    fixture = (
        "import pytest\n\n\n@pytest.fixture(scope='module')\ndef resource():\n    return [1]\n\n\n"
    )
    pytester.makepyfile(
        test_a=fixture + "def test_one(resource):\n    assert resource\n\n\n"
        "def test_two(resource):\n    assert resource\n",
        test_b=fixture + "def test_three(resource):\n    assert resource\n\n\n"
        "def test_fails():\n    assert False\n",
    )
    counts = {"test_a.py::test_one": 3, "test_b.py::test_three": 2, "test_a.py::test_two": 2}
    counts["test_b.py::test_fails"] = 2
    plugin = _SampleAtEnd(counts)
    result = pytester.runpytest("-p", "no:cacheprovider", plugins=[plugin])
    result.assert_outcomes(passed=3, failed=1)  # the re-runs are not reported
    assert {k: len(v) for k, v in plugin.result.items()} == {
        "test_a.py::test_one": 3,
        "test_b.py::test_three": 2,
        "test_a.py::test_two": 2,
        "test_b.py::test_fails": 0,  # failing runs give no timing
    }
    assert all(d > 0 for v in plugin.result.values() for d in v)
