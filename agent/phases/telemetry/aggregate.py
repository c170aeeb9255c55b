"""Per (service, operation, version) aggregates: counts, sketch quantiles, edges, signatures."""

from __future__ import annotations

import heapq
import sys
from collections import Counter
from collections.abc import Iterable
from math import ceil, log
from operator import attrgetter
from typing import TypeVar

from agent.otel import NO_LOCATION
from agent.phases.telemetry.raw import OpKey, RawEvent
from agent.records import CallEdge, SignatureCount, SpanStatus, TelemetryEvent, TelemetryMetrics
from agent.sketch import INV_LOG_GAMMA, QuantileSketch, bucket_key

OTHER = "(other)"  # where events go once the operation (or edge, signature) limit is reached
OTHER_KEY: OpKey = (OTHER, OTHER, "")
MAX_EDGES = 256
MAX_SIGNATURES = 64
LOCATION_TRIES = 8  # events of an operation looked at for its code location
K = TypeVar("K")
MAX_VALUE = 2**62  # below this, ceil(log_gamma(value)) never passes MAX_KEY
_duration = attrgetter("duration_ns")


def node(service: str, operation: str) -> str:
    """How an operation is named in a call edge."""
    return f"{service}/{operation}"


class OpAggregate:
    """The running totals of one operation; merged by `Aggregator`, emitted as metrics."""

    __slots__ = (
        "count",
        "edges",
        "errors",
        "failures",
        "first_ns",
        "last_ns",
        "location",
        "location_tries",
        "max_ns",
        "min_ns",
        "signatures",
        "sketch",
        "slowest",
        "total_ns",
    )

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.total_ns = 0
        self.min_ns = sys.maxsize
        self.max_ns = 0
        self.first_ns = sys.maxsize
        self.last_ns = 0
        self.sketch = QuantileSketch()
        self.edges: dict[OpKey, int] = {}  # child operation -> calls from this one
        self.signatures: dict[str, int] = {}
        self.location = NO_LOCATION
        self.location_tries = LOCATION_TRIES
        self.slowest: list[RawEvent] = []
        self.failures: list[RawEvent] = []

    def add_group(self, events: list[RawEvent], exemplars: int) -> None:
        """Fold events of this operation in; the per-event work is in list comprehensions."""
        durations = [e.duration_ns for e in events]
        ends = [e.start_ns + e.duration_ns for e in events]
        self.count += len(events)
        self.total_ns += sum(durations)
        low, high = min(durations), max(durations)
        first, last = min([e.start_ns for e in events]), max(ends)
        self.min_ns = min(self.min_ns, low)
        self.max_ns = max(self.max_ns, high)
        self.first_ns = min(self.first_ns, first)
        self.last_ns = max(self.last_ns, last)
        self._sketch(durations, low, high)
        failed = [e for e in events if e.status is SpanStatus.ERROR]
        self.errors += len(failed)
        self.failures.extend(failed[: max(0, exemplars - len(self.failures))])
        for signature in [e.signature for e in events if e.exception is not None]:
            if signature:
                _bump(self.signatures, signature, MAX_SIGNATURES, OTHER)
        if exemplars:
            self._keep_slowest(events, durations, exemplars)
        self._locate(events)

    def _sketch(self, durations: list[int], low: int, high: int) -> None:
        if low >= 1 and high <= MAX_VALUE:  # the usual case: no clamping per value
            keys = [ceil(log(d) * INV_LOG_GAMMA) for d in durations]
        else:
            keys = [bucket_key(d) for d in durations]
        buckets = Counter(self.sketch.buckets)
        buckets.update(keys)
        self.sketch.buckets = dict(buckets)
        self.sketch.count += len(keys)

    def _keep_slowest(self, events: list[RawEvent], durations: list[int], keep: int) -> None:
        # Only events at least as slow as the k-th slowest so far can enter: usually none.
        floor = self.slowest[-1].duration_ns if len(self.slowest) >= keep else -1
        if len(durations) > keep:
            floor = max(floor, sorted(durations)[-keep])
        candidates = [e for e in events if e.duration_ns >= floor]
        self.slowest = heapq.nlargest(keep, [*self.slowest, *candidates], key=_duration)

    def _locate(self, events: list[RawEvent]) -> None:
        # The first events of an operation decide; only those with attributes at hand are
        # looked at (the parser decodes the first few of each operation at once).
        if not self.location_tries:
            return
        for e in events[: self.location_tries]:
            self.location_tries -= 1
            if e.attributes_at_hand and e.location.function:
                self.location = e.location
                self.location_tries = 0
                return

    def metrics(self, key: OpKey) -> TelemetryMetrics:
        service, operation, version = key
        sketch = self.sketch
        by_child: dict[str, int] = {}
        for (child_service, child_op, _), calls in self.edges.items():
            name = node(child_service, child_op)  # versions of a child are one node
            by_child[name] = by_child.get(name, 0) + calls
        edges = sorted(by_child.items(), key=lambda kv: (-kv[1], kv[0]))
        sigs = sorted(self.signatures.items(), key=lambda kv: (-kv[1], kv[0]))
        parent = node(service, operation)
        return TelemetryMetrics(
            service=service,
            operation=operation,
            version=version,
            count=self.count,
            error_count=self.errors,
            mean_ns=self.total_ns / self.count,
            p50_ns=sketch.quantile(0.50),
            p95_ns=sketch.quantile(0.95),
            p99_ns=sketch.quantile(0.99),
            min_ns=self.min_ns,
            max_ns=self.max_ns,
            window_start_ns=self.first_ns,
            window_end_ns=self.last_ns,
            edges=tuple(CallEdge(parent, child, n) for child, n in edges),
            exceptions=tuple(SignatureCount(sig, n) for sig, n in sigs),
            sketch=sketch.to_pairs(),
            location=self.location,
        )


class Aggregator:
    """All operations of one ingest; memory is bounded by `max_operations`, not by events."""

    def __init__(self, max_operations: int = 10_000, exemplars: int = 3) -> None:
        self.max_operations = max_operations
        self.exemplars = exemplars
        self.ops: dict[OpKey, OpAggregate] = {}
        self.overflow = 0  # events folded into OTHER because of the operation limit

    def add_all(self, items: Iterable[RawEvent]) -> None:
        """Fold a batch in: grouped by operation first, so each group is folded in bulk."""
        groups: dict[OpKey, list[RawEvent]] = {}
        for item in items:
            group = groups.get(item.key)
            if group is None:
                groups[item.key] = [item]
            else:
                group.append(item)
        touched = []
        for key, events in groups.items():
            agg = self._aggregate(key, len(events))
            agg.add_group(events, self.exemplars)
            touched.append(agg)
            for parent, count in Counter([e.parent_key for e in events]).items():
                if parent is not None:
                    self._add_edge(parent, key, count)
        _own_attributes([e for agg in touched for e in (*agg.slowest, *agg.failures)])

    def _add_edge(self, parent: OpKey, child: OpKey, count: int) -> None:
        edges = self._aggregate(parent, 0).edges
        if child in edges:
            edges[child] += count
        else:
            _bump(edges, child, MAX_EDGES, OTHER_KEY, count)

    def add(self, event: RawEvent) -> None:
        self.add_all([event])

    def _aggregate(self, key: OpKey, events: int) -> OpAggregate:
        agg = self.ops.get(key)
        if agg is None:
            if len(self.ops) >= self.max_operations:
                self.overflow += events
                key = (key[0], OTHER, key[2])
                if key not in self.ops and len(self.ops) >= 2 * self.max_operations:
                    key = OTHER_KEY
                agg = self.ops.get(key)
            if agg is None:
                agg = self.ops[key] = OpAggregate()
        return agg

    def metrics(self) -> tuple[TelemetryMetrics, ...]:
        """Every operation that had events, in (service, operation, version) order."""
        return tuple(self.ops[k].metrics(k) for k in sorted(self.ops) if self.ops[k].count)

    def exemplar_events(self) -> list[TelemetryEvent]:
        """The slowest and the failing events of each operation, each once."""
        chosen: dict[int, RawEvent] = {}
        for key in sorted(self.ops):
            agg = self.ops[key]
            for event in [*agg.slowest, *agg.failures]:
                chosen.setdefault(id(event), event)
        return [event.to_event() for event in chosen.values()]


def _own_attributes(events: list[RawEvent]) -> None:
    """Exemplars outlive their batch: decode their attributes now, so they hold no line.

    In line order, so each line is decoded once however many exemplars it holds.
    """
    pending = [e for e in events if not e.attributes_at_hand]
    pending.sort(key=lambda e: e.line_order)
    for event in pending:
        event.attributes  # noqa: B018 - reading it decodes and keeps the dict


def _bump(counts: dict[K, int], key: K, limit: int, other: K, by: int = 1) -> None:
    if key not in counts and len(counts) >= limit:
        key = other
    counts[key] = counts.get(key, 0) + by
