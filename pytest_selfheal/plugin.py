"""The `selfheal` pytest plugin entry point; cheap to import, inert unless enabled."""

from __future__ import annotations

import os

import pytest

from pytest_selfheal import options, validation

# Set by selfheal's own confirming re-runs so that they never record or heal themselves.
DISABLE_ENV = "SELFHEAL_DISABLE"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = options.add_options(parser)
    validation.add_options(group, parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "selfheal(ratio=None, floor_ms=None): per-test slowdown thresholds for pytest-selfheal.",
    )
    # Validation mode first: it switches healing off before anything else looks at it.
    validation.configure(config)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        if "selfheal" in workerinput:
            from pytest_selfheal.worker import WorkerSide

            config.pluginmanager.register(WorkerSide(config, workerinput), "selfheal-worker")
        return
    if os.environ.get(DISABLE_ENV) == "1" or validation.is_validating(config):
        return
    if not options.is_enabled(config):
        return
    checked = options.read(config)  # bad values stop here, before anything heavy is imported
    from pytest_selfheal.session import Controller, uses_xdist

    controller = Controller(config, checked)
    config.pluginmanager.register(controller, "selfheal-controller")
    if not uses_xdist(config):
        controller.start_local()
