"""One schema for every event: code location, exception signature and the parent's operation."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.otel import CODE_FILE, CODE_FUNCTION, code_location, exception_signature
from agent.phases.telemetry.raw import Extracted, RawEvent
from agent.records import AttrValue, CodeLocation, TelemetryEvent

OpKey = tuple[str, str, str]  # (service, operation, version)
_CODE_KEYS = (*CODE_FUNCTION, *CODE_FILE)
_NO_LOCATION = CodeLocation()


class LinkIndex:
    """trace id + span id → the span's operation, for the most recent spans only (bounded)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 16)
        self._ops: dict[str, OpKey] = {}

    def add(self, trace_id: str, span_id: str, key: OpKey) -> None:
        self._ops[trace_id + span_id] = key
        if len(self._ops) > self.capacity:
            # dicts keep insertion order: drop the oldest tenth in one go.
            for old in list(itertools.islice(self._ops, self.capacity // 10)):
                del self._ops[old]

    def get(self, trace_id: str, span_id: str) -> OpKey | None:
        return self._ops.get(trace_id + span_id)

    def __len__(self) -> int:
        return len(self._ops)


@dataclass
class LinkState:
    """Carried from batch to batch of one ingest: the index and children awaiting a parent.

    Exporters send children before their parents (a parent ends last), and a parent may land
    in the next batch, so an unresolved child waits for at most `hold_batches` more batches.
    """

    index: LinkIndex
    hold_batches: int = 1
    pending: list[tuple[int, Extracted]] = field(default_factory=list)
    unresolved: int = 0  # released with a parent span id but no known parent operation
    _locations: dict[tuple[str, str, int], CodeLocation] = field(default_factory=dict)

    def location(self, attrs: dict[str, AttrValue]) -> CodeLocation:
        """The span's code location, shared between events that have the same one."""
        if not any(k in attrs for k in _CODE_KEYS):
            return _NO_LOCATION
        loc = code_location(attrs)
        key = (loc.file, loc.function, loc.line)
        cached = self._locations.get(key)
        if cached is None:
            if len(self._locations) >= 65_536:
                self._locations.clear()
            cached = self._locations[key] = loc
        return cached


Normalised = tuple[TelemetryEvent, OpKey | None]  # an event and its parent's operation key


def normalise(
    batch: Iterable[Extracted], state: LinkState, batch_no: int, final: bool
) -> list[Normalised]:
    """Normalise one batch; children whose parent is not seen yet are held back (bounded)."""
    items = list(batch)
    for item in items:
        if item.span_id:
            state.index.add(
                item.trace_id, item.span_id, (item.service, item.operation, item.version)
            )
    out: list[Normalised] = []
    waiting = [*state.pending, *((batch_no, item) for item in items)]
    state.pending = []
    for held_since, item in waiting:
        parent = _parent_key(item, state.index)
        if (
            parent is None
            and item.parent_span_id
            and not _released(held_since, batch_no, state, final)
        ):
            state.pending.append((held_since, item))
            continue
        if parent is None and item.parent_span_id:
            state.unresolved += 1
        out.append((_event(item, parent, state), parent))
    return out


def _released(held_since: int, batch_no: int, state: LinkState, final: bool) -> bool:
    return final or batch_no - held_since >= state.hold_batches


def _parent_key(item: Extracted, index: LinkIndex) -> OpKey | None:
    if not item.parent_span_id:
        return None
    key = index.get(item.trace_id, item.parent_span_id)
    if key is None and isinstance(item, TelemetryEvent) and item.parent_operation:
        return (item.service, item.parent_operation, item.version)  # set by the writer
    return key


def _event(item: Extracted, parent: OpKey | None, state: LinkState) -> TelemetryEvent:
    parent_op = parent[1] if parent is not None else ""
    if isinstance(item, TelemetryEvent):
        return _settle(item, parent_op, state)
    return from_raw(item, parent_op, state)


def from_raw(raw: RawEvent, parent_op: str, state: LinkState) -> TelemetryEvent:
    location = state.location(raw.attributes)
    signature = exception_signature(raw.exc_type, raw.exc_stack, location) if raw.exc_type else ""
    return TelemetryEvent(
        source=raw.source,
        service=raw.service,
        operation=raw.operation,
        start_ns=raw.start_ns,
        duration_ns=raw.duration_ns,
        status=raw.status,
        version=raw.version,
        trace_id=raw.trace_id,
        span_id=raw.span_id,
        parent_span_id=raw.parent_span_id,
        parent_operation=parent_op,
        location=location,
        exception_type=raw.exc_type,
        exception_message=raw.exc_message,
        exception_stacktrace=raw.exc_stack,
        exception_signature=signature,
        attributes=raw.attributes,
    )


def _settle(event: TelemetryEvent, parent_op: str, state: LinkState) -> TelemetryEvent:
    """Fill what a writer (spool, plugin, receiver) left empty; keep what it set."""
    changes: dict[str, object] = {}
    if parent_op and not event.parent_operation:
        changes["parent_operation"] = parent_op
    location = event.location
    if location == _NO_LOCATION:
        location = state.location(event.attributes)
        if location != _NO_LOCATION:
            changes["location"] = location
    if event.exception_type and not event.exception_signature:
        changes["exception_signature"] = exception_signature(
            event.exception_type, event.exception_stacktrace, location
        )
    return dataclasses.replace(event, **changes) if changes else event  # type: ignore[arg-type]
