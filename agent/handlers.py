"""The explicit registry that joins camelCase handler names in sequences to Python functions."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar

from agent.errors import SequenceError

if TYPE_CHECKING:
    from agent.conductor import BeatContext

ENTRY_POINT_GROUP = "selfheal.handlers"

B = TypeVar("B")
HandlerFunc = Callable[[Any, "BeatContext"], Any]


class Kind(enum.Enum):
    PURE = "pure"  # a computation on the baton, no I/O
    STAGE_CREW = "stage-crew"  # touches the store, files, git, subprocesses or the network


@dataclass(frozen=True)
class Handler:
    name: str
    kind: Kind
    func: HandlerFunc
    phase: str


class HandlerSet:
    """The handlers one phase module declares, collected with the `beat` decorator."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self._handlers: list[Handler] = []

    def beat(
        self, name: str, kind: str
    ) -> Callable[[Callable[[B, BeatContext], B]], Callable[[B, BeatContext], B]]:
        def register(func: Callable[[B, BeatContext], B]) -> Callable[[B, BeatContext], B]:
            self._handlers.append(Handler(name, Kind(kind), func, self.phase))
            return func

        return register

    def __iter__(self) -> Iterator[Handler]:
        return iter(self._handlers)


class Registry:
    """Name → Handler; a name registered twice is an error, not a silent override."""

    def __init__(self, handlers: Iterable[Handler] = ()) -> None:
        self._by_name: dict[str, Handler] = {}
        for handler in handlers:
            self.add(handler)

    def add(self, handler: Handler) -> None:
        if handler.name in self._by_name:
            other = self._by_name[handler.name]
            raise SequenceError(
                f"handler {handler.name!r} registered twice ({other.phase} and {handler.phase})"
            )
        self._by_name[handler.name] = handler

    def get(self, name: str) -> Handler | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


def builtin_handlers() -> list[Handler]:
    """Every beat this package ships; each phase module adds one line here."""
    from agent.phases import deployment, diagnosis, telemetry

    sets: list[HandlerSet] = [telemetry.HANDLERS, diagnosis.HANDLERS]
    sets.append(deployment.HANDLERS)
    from agent.phases import learning

    sets.append(learning.HANDLERS)
    from agent.phases import anomaly

    sets.append(anomaly.HANDLERS)
    from agent.phases import validation

    sets.append(validation.HANDLERS)
    from agent.phases import fix

    sets.append(fix.HANDLERS)
    return [h for s in sets for h in s]


def plugin_handlers() -> list[Handler]:
    """Handlers from the `selfheal.handlers` entry-point group (a Handler or a HandlerSet)."""
    found: list[Handler] = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken third-party package must name itself
            raise SequenceError(
                f"entry point {ep.name} ({ep.value}) failed to load: {exc}"
            ) from None
        if isinstance(obj, Handler):
            found.append(obj)
        elif isinstance(obj, HandlerSet):
            found.extend(obj)
        else:
            raise SequenceError(
                f"entry point {ep.name} ({ep.value}) is not a Handler or HandlerSet"
            )
    return found


def default_registry() -> Registry:
    return Registry([*builtin_handlers(), *plugin_handlers()])
