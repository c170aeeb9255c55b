"""`--selfheal-deploy` and its ini twin reach the delivery phase's configuration."""

from __future__ import annotations

from typing import Any

import pytest

QUIET = ("-p", "no:cacheprovider", "--selfheal-coverage=never")


def test_bad_deploy_mode_is_a_usage_error(project: Any) -> None:
    result = project.pytester.runpytest("--selfheal", "--selfheal-deploy=sideways", *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--selfheal-deploy*invalid choice: 'sideways'*"])


def test_bad_deploy_mode_in_ini_is_a_usage_error(project: Any) -> None:
    project.pytester.makeini("[pytest]\nselfheal_deploy = yolo\n")
    result = project.pytester.runpytest("--selfheal", *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--selfheal-deploy='yolo': expected one of off, propose, pr*"])


def test_deploy_mode_overrides_the_project_setting(project: Any) -> None:
    from pytest_selfheal import options

    config = project.pytester.parseconfig("--selfheal", "--selfheal-deploy=off")
    assert options.read(config).deploy == "off"
    project.pytester.makeini("[pytest]\nselfheal_deploy = merge\n")
    assert options.read(project.pytester.parseconfig("--selfheal")).deploy == "merge"
