"""The `selfheal` pytest plugin entry point; cheap to import, inert unless enabled."""

from __future__ import annotations

import pytest

from pytest_selfheal import validation


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("selfheal", "self-healing regressions (pytest-selfheal)")
    group.addoption(
        "--selfheal",
        action="store_true",
        dest="selfheal",
        default=None,
        help="record this run, detect regressions against earlier runs and heal them.",
    )
    parser.addini("selfheal", type="bool", default=False, help="enable pytest-selfheal.")
    validation.add_options(group, parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Validation mode first: it switches healing off before anything else looks at it.
    validation.configure(config)
