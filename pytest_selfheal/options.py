"""Command-line options and ini keys of the plugin, and their checked values (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

REPORT_FORMATS = ("json", "md")
COVERAGE_MODES = ("auto", "always", "never")
DEPLOY_MODES = ("off", "propose", "pr", "merge")  # as agent.config.DEPLOY_MODES
# Anomaly kinds as agent.records.AnomalyKind spells them; kept here so the entry module does
# not import the engine.
KINDS = ("performance", "behavioral", "coverage", "error", "state", "dependency")


@dataclass(frozen=True)
class Options:
    reports: tuple[tuple[str, Path], ...] = ()
    fail_on: tuple[str, ...] = ()  # "kind" or "kind:subtype", or "any"
    coverage: str | None = None  # None: the [tool.selfheal] setting
    budget_s: float | None = None
    store: Path | None = None
    deploy: str | None = None  # None: the [tool.selfheal] setting


def add_options(parser: pytest.Parser) -> pytest.OptionGroup:
    """Declare every option and ini key; returns the group for validation mode's options."""
    group = parser.getgroup("selfheal", "self-healing regressions (pytest-selfheal)")
    group.addoption(
        "--selfheal",
        action="store_true",
        dest="selfheal",
        default=None,
        help="record this run, detect regressions against earlier runs and heal them.",
    )
    group.addoption(
        "--selfheal-report",
        action="append",
        dest="selfheal_report",
        default=None,
        metavar="FORMAT:PATH",
        help="also write the selfheal summary to PATH as json or md (repeatable).",
    )
    group.addoption(
        "--selfheal-fail-on",
        dest="selfheal_fail_on",
        default=None,
        metavar="KINDS",
        help="fail the run when an anomaly of these kinds is found: comma-separated "
        f"{', '.join(KINDS)}, kind:subtype, or any.",
    )
    group.addoption(
        "--selfheal-coverage",
        dest="selfheal_coverage",
        default=None,
        choices=COVERAGE_MODES,
        help="collect per-test coverage: auto (only when stale), always or never.",
    )
    group.addoption(
        "--selfheal-budget",
        dest="selfheal_budget",
        default=None,
        metavar="SECONDS",
        help="time budget for healing after the run, in seconds.",
    )
    group.addoption(
        "--selfheal-store",
        dest="selfheal_store",
        default=None,
        metavar="PATH",
        help="the selfheal store file (default .selfheal/selfheal.db).",
    )
    group.addoption(
        "--selfheal-deploy",
        dest="selfheal_deploy",
        default=None,
        choices=DEPLOY_MODES,
        help="deliver validated patches: off, propose (branch, default), pr or merge.",
    )
    parser.addini("selfheal", type="bool", default=False, help="enable pytest-selfheal.")
    parser.addini("selfheal_report", type="args", default=[], help="default --selfheal-report.")
    parser.addini("selfheal_fail_on", default="", help="default --selfheal-fail-on.")
    parser.addini("selfheal_coverage", default="", help="default --selfheal-coverage.")
    parser.addini("selfheal_budget", default="", help="default --selfheal-budget.")
    parser.addini("selfheal_store", default="", help="default --selfheal-store.")
    parser.addini("selfheal_deploy", default="", help="default --selfheal-deploy.")
    return group


def is_enabled(config: pytest.Config) -> bool:
    opt = config.getoption("selfheal", default=None)
    return bool(opt) or bool(config.getini("selfheal"))


def read(config: pytest.Config) -> Options:
    """Checked values, option before ini; a bad value is a UsageError naming the option."""
    root = config.rootpath
    reports = config.getoption("selfheal_report") or list(config.getini("selfheal_report"))
    fail_on = config.getoption("selfheal_fail_on") or config.getini("selfheal_fail_on")
    coverage = config.getoption("selfheal_coverage") or config.getini("selfheal_coverage")
    budget = config.getoption("selfheal_budget") or config.getini("selfheal_budget")
    store = config.getoption("selfheal_store") or config.getini("selfheal_store")
    deploy = config.getoption("selfheal_deploy") or config.getini("selfheal_deploy")
    return Options(
        reports=tuple(parse_report(spec, root) for spec in reports),
        fail_on=parse_fail_on(fail_on),
        coverage=parse_coverage(coverage),
        budget_s=parse_budget(budget),
        store=(Path(store) if Path(store).is_absolute() else root / store) if store else None,
        deploy=parse_deploy(deploy),
    )


def parse_deploy(value: str) -> str | None:
    if not value:
        return None
    if value not in DEPLOY_MODES:
        raise pytest.UsageError(
            f"--selfheal-deploy={value!r}: expected one of {', '.join(DEPLOY_MODES)}"
        )
    return value


def parse_report(spec: str, root: Path) -> tuple[str, Path]:
    fmt, sep, path = spec.partition(":")
    if not sep or fmt not in REPORT_FORMATS or not path:
        raise pytest.UsageError(f"--selfheal-report={spec!r}: expected json:PATH or md:PATH")
    target = Path(path)
    return fmt, target if target.is_absolute() else Path.cwd() / target


def parse_fail_on(value: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    for item in items:
        kind = item.split(":", 1)[0]
        if item != "any" and kind not in KINDS:
            raise pytest.UsageError(
                f"--selfheal-fail-on={value!r}: unknown kind {kind!r}; expected a comma-separated "
                f"list of {', '.join(KINDS)} (optionally kind:subtype), or any"
            )
    return items


def parse_coverage(value: str) -> str | None:
    if not value:
        return None
    if value not in COVERAGE_MODES:
        raise pytest.UsageError(
            f"--selfheal-coverage={value!r}: expected one of {', '.join(COVERAGE_MODES)}"
        )
    return value


def parse_budget(value: str) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise pytest.UsageError(
            f"--selfheal-budget={value!r}: expected a number of seconds (0 or more)"
        )
    return seconds


def matches_fail_on(fail_on: tuple[str, ...], kind: str, subtype: str) -> bool:
    return any(item in ("any", kind, f"{kind}:{subtype}") for item in fail_on)
