"""`selfheal heal [PATH]`: diagnose, fix and validate the anomalies of the latest test run."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.config import Config
    from agent.records import Anomaly
    from agent.store import Store


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "heal",
        help="diagnose the latest anomalies and write validated patches",
        description="Heal the anomalies of the latest `pytest --selfheal` run in PATH (default: "
        "the project root). When no run with anomalies is recorded, the test suite is run "
        "first to detect them. Validated patches are written to .selfheal/patches/.",
    )
    parser.add_argument("path", nargs="?", metavar="PATH", help="project directory")
    parser.add_argument(
        "--budget", type=float, metavar="SECONDS", help="time budget (default: [tool.selfheal])"
    )
    parser.add_argument("--anomaly", metavar="ID", help="heal only this anomaly")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.commands.common import config_from
    from agent.config import load_config

    config = config_from(args)
    if args.path:
        root = Path(args.path).resolve()
        if not root.is_dir():
            raise ConfigError(f"{args.path}: not a directory")
        overrides: dict[str, Any] = {"store": str(config.store)} if args.store else {}
        config = load_config(root, overrides)
    budget = config.budget_s if args.budget is None else args.budget
    if budget <= 0:
        raise ConfigError(f"--budget={args.budget}: expected a positive number of seconds")
    anomalies = _anomalies(config, args.anomaly)
    if not anomalies:
        print(f"selfheal: no anomalies recorded for {config.root}: nothing to heal")
        return 0
    return _heal(config, anomalies, budget)


def _anomalies(config: Config, only: str | None) -> list[Anomaly]:
    from agent.commands.common import open_store

    if only is None and not _latest(config):
        _detect(config)
    with open_store(config) as store:
        if only is not None:
            from agent.records import Anomaly

            found = store.get(only, Anomaly)
            if found is None:
                raise ConfigError(f"--anomaly {only}: no such anomaly in {config.store}")
            return [found]
        return _latest_anomalies(store)


def _latest(config: Config) -> bool:
    from agent.commands.common import open_store

    if not config.store.exists():
        return False
    with open_store(config) as store:
        return bool(_latest_anomalies(store))


def _latest_anomalies(store: Store) -> list[Anomaly]:
    from agent.records import Anomaly

    row = store.conn.execute("SELECT max(id) FROM runs WHERE kind = 'test'").fetchone()
    if row is None or row[0] is None:
        return []
    return store.find(Anomaly, run_id=int(row[0]))


def _detect(config: Config) -> None:
    """Run the suite once with detection on and healing off, to find the anomalies."""
    print(f"selfheal: running the tests in {config.root} to detect anomalies", flush=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "--selfheal", "--selfheal-budget=0"]
    cmd += ["-p", "no:cacheprovider"]
    subprocess.run(cmd, cwd=config.root, check=False, env=_env(config))


def _env(config: Config) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["SELFHEAL_STORE"] = str(config.store)
    return env


def _heal(config: Config, anomalies: list[Anomaly], budget: float) -> int:
    from agent.commands.common import open_store
    from agent.conductor import Conductor
    from agent.heal import heal

    def say(message: str) -> None:
        print(message, flush=True)

    store = open_store(config)
    try:
        with Conductor(config, store_factory=lambda: store, progress=say) as cond:
            outcome = heal(cond, anomalies, budget, say)
    finally:
        store.close()
    for line in outcome.lines(config.root):
        print(line)
    print(
        f"selfheal: {outcome.healed} of {len(outcome.results)} anomalies healed "
        f"in {outcome.elapsed_s:.1f}s"
    )
    return 0 if outcome.healed == len(outcome.results) else 1
