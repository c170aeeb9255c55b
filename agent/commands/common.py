"""What several commands share: the configuration and a conductor over a strictly opened store."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import Config, load_config

if TYPE_CHECKING:
    from agent.conductor import Conductor
    from agent.store import Store


def config_from(args: argparse.Namespace) -> Config:
    """The project configuration, with the global --root and --store options applied."""
    root = Path(args.root).resolve() if getattr(args, "root", None) else None
    overrides: dict[str, Any] = {}
    store = getattr(args, "store", None)
    if store:
        overrides["store"] = str(Path(store).resolve())
    return load_config(root, overrides)


def open_store(config: Config) -> Store:
    """The CLI refuses to replace a file the user pointed it at: no recovery, a clear error."""
    from agent.store import open_store as _open

    return _open(config.store, recover=False)


@contextlib.contextmanager
def conductor(config: Config) -> Iterator[Conductor]:
    """A conductor whose store is opened strictly, on first use, and closed at the end."""
    from agent.conductor import Conductor

    opened: list[Store] = []

    def factory() -> Store:
        store = open_store(config)
        opened.append(store)
        return store

    try:
        with Conductor(config, store_factory=factory) as cond:
            yield cond
    finally:
        for store in opened:
            store.close()
