"""Per (service, operation, version) aggregates: counts, sketch quantiles, edges, signatures."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable

from agent.phases.telemetry.normalise import Normalised, OpKey
from agent.records import (
    CallEdge,
    CodeLocation,
    SignatureCount,
    SpanStatus,
    TelemetryEvent,
    TelemetryMetrics,
)
from agent.sketch import QuantileSketch

OTHER = "(other)"  # where events go once the operation (or edge, signature) limit is reached
MAX_EDGES = 256
MAX_SIGNATURES = 64
_NO_LOCATION = CodeLocation()


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
        self.min_ns = 0
        self.max_ns = 0
        self.first_ns = 0
        self.last_ns = 0
        self.sketch = QuantileSketch()
        self.edges: dict[str, int] = {}
        self.signatures: dict[str, int] = {}
        self.location = _NO_LOCATION
        self.slowest: list[tuple[int, int, TelemetryEvent]] = []  # min-heap of the slowest
        self.failures: list[TelemetryEvent] = []

    def metrics(self, key: OpKey) -> TelemetryMetrics:
        service, operation, version = key
        sketch = self.sketch
        edges = sorted(self.edges.items(), key=lambda kv: (-kv[1], kv[0]))
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
        self._serial = itertools.count()

    def add_all(self, items: Iterable[Normalised]) -> None:
        for event, parent in items:
            self.add(event, parent)

    def add(self, event: TelemetryEvent, parent: OpKey | None) -> None:
        agg = self._aggregate((event.service, event.operation, event.version))
        duration = event.duration_ns
        start = event.start_ns
        if agg.count == 0:
            agg.min_ns = agg.max_ns = duration
            agg.first_ns, agg.last_ns = start, start + duration
        else:
            agg.min_ns = min(agg.min_ns, duration)
            agg.max_ns = max(agg.max_ns, duration)
            agg.first_ns = min(agg.first_ns, start)
            agg.last_ns = max(agg.last_ns, start + duration)
        agg.count += 1
        agg.total_ns += duration
        agg.sketch.add(duration)
        if agg.location is _NO_LOCATION and event.location.function:
            agg.location = event.location
        if event.status is SpanStatus.ERROR:
            agg.errors += 1
            if len(agg.failures) < self.exemplars:
                agg.failures.append(event)
        if event.exception_signature:
            _bump(agg.signatures, event.exception_signature, MAX_SIGNATURES)
        if parent is not None:
            _bump(self._aggregate(parent).edges, node(event.service, event.operation), MAX_EDGES)
        self._keep_if_slow(agg, event)

    def _keep_if_slow(self, agg: OpAggregate, event: TelemetryEvent) -> None:
        if self.exemplars <= 0:
            return
        entry = (event.duration_ns, next(self._serial), event)
        if len(agg.slowest) < self.exemplars:
            heapq.heappush(agg.slowest, entry)
        elif entry[0] > agg.slowest[0][0]:
            heapq.heapreplace(agg.slowest, entry)

    def _aggregate(self, key: OpKey) -> OpAggregate:
        agg = self.ops.get(key)
        if agg is None:
            if len(self.ops) >= self.max_operations:
                self.overflow += 1
                key = (key[0], OTHER, key[2])
                if key not in self.ops and len(self.ops) >= 2 * self.max_operations:
                    key = (OTHER, OTHER, "")
                agg = self.ops.get(key)
            if agg is None:
                agg = self.ops[key] = OpAggregate()
        return agg

    def metrics(self) -> tuple[TelemetryMetrics, ...]:
        """Every operation that had events, in (service, operation, version) order."""
        return tuple(self.ops[k].metrics(k) for k in sorted(self.ops) if self.ops[k].count)

    def exemplar_events(self) -> list[TelemetryEvent]:
        """The slowest and the failing events of each operation, each once."""
        chosen: dict[int, TelemetryEvent] = {}
        for key in sorted(self.ops):
            agg = self.ops[key]
            for event in [*(e for _, _, e in sorted(agg.slowest)), *agg.failures]:
                chosen.setdefault(id(event), event)
        return list(chosen.values())


def _bump(counts: dict[str, int], key: str, limit: int) -> None:
    if key not in counts and len(counts) >= limit:
        key = OTHER
    counts[key] = counts.get(key, 0) + 1
