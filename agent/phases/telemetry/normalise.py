"""One schema for every event: code location, exception signature and the parent's operation."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.otel import exception_signature
from agent.phases.telemetry.raw import OpKey, RawEvent


class LinkIndex:
    """trace id + span id → the span's operation, for the most recent spans only (bounded)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 16)
        self.ops: dict[str, OpKey] = {}

    def add(self, trace_id: str, span_id: str, key: OpKey) -> None:
        self.ops[trace_id + span_id] = key
        self.trim()

    def trim(self) -> None:
        if len(self.ops) > self.capacity:
            # dicts keep insertion order: drop the oldest entries, a tenth more than needed.
            excess = len(self.ops) - self.capacity + self.capacity // 10
            for old in list(itertools.islice(self.ops, excess)):
                del self.ops[old]

    def get(self, trace_id: str, span_id: str) -> OpKey | None:
        return self.ops.get(trace_id + span_id)

    def __len__(self) -> int:
        return len(self.ops)


@dataclass
class LinkState:
    """Carried from batch to batch of one ingest: the index and children awaiting a parent.

    Exporters send children before their parents (a parent ends last), and a parent may land
    later, so an unresolved child waits until `hold_events` more events have been seen
    (bounded memory: at most that many children wait at any time).
    """

    index: LinkIndex
    hold_events: int = 10_000
    seen: int = 0  # events normalised so far
    pending: list[tuple[int, RawEvent]] = field(default_factory=list)
    unresolved: int = 0  # released with a parent span id but no known parent operation


def normalise(batch: Iterable[RawEvent], state: LinkState, final: bool) -> list[RawEvent]:
    """Normalise one batch in place; children whose parent is not seen yet are held back."""
    items = batch if isinstance(batch, list) else list(batch)
    ops = state.index.ops  # the loops below are per span: no method calls in them
    for item in items:
        key = item.key = (item.service, item.operation, item.version)
        if item.span_id:
            ops[item.trace_id + item.span_id] = key
        if item.exception is not None:
            settle(item)
    state.index.trim()
    ready: list[RawEvent] = []
    waiting, state.pending = state.pending, []
    state.seen += len(items)
    for held_since, item in waiting:
        if _link(item, ops) or not _hold(item, held_since, state, final):
            ready.append(item)
    get = ops.get
    for item in items:
        parent_id = item.parent_span_id
        if parent_id:
            parent = get(item.trace_id + parent_id)
            if parent is not None:
                item.parent_key = parent
            elif item.parent_key is None and _hold(item, state.seen, state, final):
                continue
        ready.append(item)
    return ready


def _link(item: RawEvent, ops: dict[str, OpKey]) -> bool:
    parent = ops.get(item.trace_id + item.parent_span_id)
    if parent is not None:
        item.parent_key = parent
    return parent is not None


def _hold(item: RawEvent, held_since: int, state: LinkState, final: bool) -> bool:
    """Keep a child back for a later batch, or count it as released without its parent."""
    if not final and state.seen - held_since < state.hold_events:
        state.pending.append((held_since, item))
        return True
    state.unresolved += 1
    return False


def settle(item: RawEvent) -> None:
    """The exception signature: type and deepest frame (or the code location without one).

    The code location itself is read on first use (RawEvent.location): only events that are
    stored, and the first events of each operation, need it.
    """
    if item.exc_type and not item.signature:
        item.signature = exception_signature(item.exc_type, item.exc_stack, item.location)
