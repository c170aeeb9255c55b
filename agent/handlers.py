"""The explicit registry that joins camelCase handler names in sequences to Python functions."""

from __future__ import annotations

import enum
import importlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agent.errors import SequenceError

if TYPE_CHECKING:
    from agent.conductor import BeatContext

ENTRY_POINT_GROUP = "selfheal.handlers"

# Phase → the module whose `HANDLERS` declares its beats: one line per phase. A module is
# imported only when a sequence of its phase is resolved, or when a handler name is not found
# in the phase its sequence names (then every phase is imported, and the entry points after).
BUILTIN_PHASES: dict[str, str] = {
    "telemetry": "agent.phases.telemetry",
    "anomaly": "agent.phases.anomaly",
    "diagnosis": "agent.phases.diagnosis",
    "fix": "agent.phases.fix",
    "validation": "agent.phases.validation",
    "deployment": "agent.phases.deployment",
    "learning": "agent.phases.learning",
}

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

    def get(self, name: str, phase: str | None = None) -> Handler | None:
        """The handler called `name`; `phase` (the sequence's) is a hint for lazy registries."""
        return self._by_name.get(name)

    def load_all(self) -> None:
        """Make every handler known (a lazy registry imports and checks everything here)."""

    def names(self) -> list[str]:
        self.load_all()
        return sorted(self._by_name)

    def __len__(self) -> int:
        self.load_all()
        return len(self._by_name)


class PhaseRegistry(Registry):
    """The builtin phases, each imported on first need, then the entry points as a last resort.

    A builtin name always wins: a sequence's own phase is searched first, then every builtin
    phase, and only then the `selfheal.handlers` entry points. A third-party handler that reuses
    a builtin name (or another entry point's) is an error whenever the entry points are read:
    by `selfheal sequences check`/`show`, by a registry listing, and by any play that needs a
    third-party handler. A green test run that plays only builtin beats never reads them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending = dict(BUILTIN_PHASES)
        self._plugins_read = False
        self._plugin_problems = ""  # kept, so every later need of the entry points fails alike
        self._lock = threading.RLock()  # conductors in several threads may share one registry

    def get(self, name: str, phase: str | None = None) -> Handler | None:
        with self._lock:
            if phase is not None and phase in self._pending:
                self._load_phase(phase)
            found = self._by_name.get(name)
            if found is None:  # another phase's beat, a third-party one, or no such handler
                self.load_all()
                found = self._by_name.get(name)
            return found

    def load_all(self) -> None:
        with self._lock:
            self._load_builtins()
            self._load_plugins()

    @property
    def loaded_phases(self) -> list[str]:
        """Builtin phases imported so far (the others have cost nothing yet)."""
        return [p for p in BUILTIN_PHASES if p not in self._pending]

    def _load_builtins(self) -> None:
        for phase in list(self._pending):
            self._load_phase(phase)

    def _load_phase(self, phase: str) -> None:
        for handler in phase_handlers(phase, self._pending.pop(phase)):
            self.add(handler)

    def _load_plugins(self) -> None:
        self._load_builtins()  # every builtin name is known before a third-party one is added
        if not self._plugins_read:
            self._plugins_read = True
            try:
                self._plugin_problems = self._add_plugins(_entry_point_handlers())
            except SequenceError as exc:
                self._plugin_problems = str(exc)
        if self._plugin_problems:
            raise SequenceError(self._plugin_problems)

    def _add_plugins(self, found: list[tuple[str, Handler]]) -> str:
        """Add the third-party handlers; every reused name is one problem line."""
        problems: list[str] = []
        owners: dict[str, str] = {}
        for source, handler in found:
            if handler.name in self._by_name:
                builtin = f"builtin phase {self._by_name[handler.name].phase}"
                owner = owners.get(handler.name, builtin)
                problems.append(
                    f"{source}: handler {handler.name!r} is already registered by {owner}"
                )
                continue
            owners[handler.name] = source
            self.add(handler)
        return "\n".join(problems)


def phase_handlers(phase: str, module_name: str) -> HandlerSet:
    """Import one builtin phase module and check that its HANDLERS belong to that phase."""
    handlers = importlib.import_module(module_name).HANDLERS
    if not isinstance(handlers, HandlerSet) or handlers.phase != phase:
        raise SequenceError(f"{module_name}.HANDLERS is not the HandlerSet of phase {phase!r}")
    return handlers


def builtin_handlers() -> list[Handler]:
    """Every beat this package ships (imports every phase of BUILTIN_PHASES)."""
    return [h for phase, module in BUILTIN_PHASES.items() for h in phase_handlers(phase, module)]


def _entry_point_handlers() -> list[tuple[str, Handler]]:
    """(entry point, handler) for the `selfheal.handlers` group (a Handler or a HandlerSet)."""
    from importlib import metadata  # scanning installed distributions is only done on need

    found: list[tuple[str, Handler]] = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {ep.name} ({ep.value})"
        try:
            obj = ep.load()
        except Exception as exc:  # a broken third-party package must name itself
            raise SequenceError(f"{source} failed to load: {exc}") from None
        if isinstance(obj, Handler):
            found.append((source, obj))
        elif isinstance(obj, HandlerSet):
            found.extend((source, handler) for handler in obj)
        else:
            raise SequenceError(f"{source} is not a Handler or HandlerSet")
    return found


def plugin_handlers() -> list[Handler]:
    """Handlers from the `selfheal.handlers` entry-point group (a Handler or a HandlerSet)."""
    return [handler for _, handler in _entry_point_handlers()]


def default_registry() -> Registry:
    """The builtin phases and the entry points, each read only when first needed."""
    return PhaseRegistry()
