"""`selfheal insights`: what works, what recurs, open proposals and time to heal, as a table."""

from __future__ import annotations

import argparse

from agent.commands.common import config_from, open_store
from agent.errors import SelfHealError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "insights",
        help="show what the learning store knows",
        description="Strategy success per anomaly kind, applied fixes and their outcome, open "
        "proposals, hotspots and time to heal, read from the store.",
    )
    parser.add_argument(
        "--track",
        action="store_true",
        help="first look for newly applied fixes and later runs (learning phase)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from agent.reporting.data import collect
    from agent.reporting.text import terminal

    config = config_from(args)
    require_store(config)
    if args.track:
        track(config)
    with open_store(config) as store:
        data = collect(store, config.root.name, time.time_ns(), config.root)
    for line in terminal(data):
        print(line)
    return 0


def require_store(config: object) -> None:
    """Reading commands do not create a store where there is none; they say what to do."""
    from agent.config import Config

    assert isinstance(config, Config)
    if not config.store.is_file():
        raise SelfHealError(
            f"no selfheal store at {config.store}: run `pytest --selfheal` in the project first"
        )


def track(config: object) -> None:
    """Play learning.track once over the project's history and store."""
    from agent.commands.common import conductor
    from agent.config import Config
    from agent.phases.learning import TrackBaton, TrackRequest

    assert isinstance(config, Config)
    with conductor(config) as cond:
        cond.play("learning.track", TrackBaton(TrackRequest()))
