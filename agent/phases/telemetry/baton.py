"""The telemetry phase's request, outcome and baton."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.phases.telemetry.aggregate import Aggregator
from agent.phases.telemetry.normalise import LinkIndex, LinkState
from agent.phases.telemetry.raw import OpKey, RawEvent
from agent.phases.telemetry.sources import Cursor, ReadStats, SourceFile
from agent.records import TelemetryEvent, TelemetryMetrics

RUN_KINDS = ("ingest", "test", "agent", "receiver")
START = Cursor()


@dataclass(frozen=True)
class TelemetryRequest:
    """What to ingest and how; `sources` are files or directories, `events` in-memory events."""

    sources: tuple[Path, ...] = ()
    events: tuple[TelemetryEvent, ...] = ()
    run_kind: str = "ingest"  # ingest | test | agent | receiver
    commit: str = ""
    dirty: bool = False
    env_key: str = ""
    # Store every event (test runs need them), or only metrics plus exemplars: the slowest
    # and the failing events of each operation (large ingests would otherwise store gigabytes).
    keep_raw: bool = False
    batch_events: int = 10_000  # events per batch: bounds memory, whatever the input size
    max_operations: int = 10_000
    exemplars: int = 3  # slowest and failing events kept per operation when not keep_raw
    # Hand the stored events on in the outcome (`handed_on`), so that the next phase reads the
    # run from memory instead of back from the store; needs keep_raw. Memory grows with the
    # ingest, so only for runs that fit in memory anyway (a test session's events).
    hand_on: bool = False
    # In-memory events that arrive while the ingest runs (a test session's, from the plugin's
    # sidecar): each call blocks until the next chunk and says whether it is the last. The
    # ingest plays one batch per chunk, so most of a run is stored before the session ends.
    feed: Callable[[], tuple[tuple[TelemetryEvent, ...], bool]] | None = None
    # Spans known to arrive last, as (trace id, span id, (service, operation, version)): their
    # children are linked as they come instead of waiting for them (a fed session's span).
    parents: tuple[tuple[str, str, OpKey], ...] = ()


@dataclass(frozen=True)
class TelemetryOutcome:
    """What one ingest did: the run it stored and the counts behind its summary."""

    run_id: int
    events: int
    stored_events: int
    sources: tuple[str, ...]
    malformed: Mapping[str, int]  # per source: lines (or spans in a line) that were skipped
    ignored: int  # valid lines of other OTLP signals (logs, metrics)
    metrics: tuple[TelemetryMetrics, ...]
    edges: int
    signatures: int
    unresolved_parents: int
    overflow: int
    batches: int
    # With `hand_on`: every stored event, normalised, in the order of the `spans` rows.
    handed_on: tuple[RawEvent, ...] = field(default=(), repr=False, compare=False)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())


@dataclass(frozen=True)
class RunInfo:
    """The run record as the first beat opens it; the store beat writes it."""

    kind: str
    commit: str
    dirty: bool
    env_key: str
    started_ns: int


@dataclass
class IngestState:
    """Accumulators that live across the batches of one ingest (updated in place)."""

    stats: ReadStats
    links: LinkState
    aggregator: Aggregator
    events: int = 0
    stored: int = 0
    kept: list[RawEvent] = field(default_factory=list)  # stored events, with `hand_on`
    # The feed's chunk for the next batch, fetched by `ingest` between plays: waiting for a
    # test session is not the sequence's time.
    fed: tuple[tuple[TelemetryEvent, ...], bool] = ((), True)

    @classmethod
    def for_request(cls, request: TelemetryRequest) -> IngestState:
        # Parents are looked up among the last 100,000 spans (or 10 batches); a child waits
        # for a later parent for one batch's worth of events (at least 10,000).
        index = LinkIndex(max(10 * request.batch_events, 100_000))
        for trace_id, span_id, key in request.parents:
            index.add(trace_id, span_id, key)
        return cls(
            stats=ReadStats(),
            links=LinkState(index, hold_events=max(request.batch_events, 10_000)),
            aggregator=Aggregator(request.max_operations, request.exemplars),
        )


@dataclass(frozen=True)
class TelemetryBaton:
    """Passed through the seven beats; `ingest` plays the sequence once per batch."""

    request: TelemetryRequest
    state: IngestState
    run: RunInfo | None = None
    batch: int = 0
    sources: tuple[SourceFile, ...] = ()
    cursor: Cursor = START
    previous: Cursor = START  # where the last batch started
    memory_read: bool = False  # request.events went into the first batch
    exhausted: bool = False  # nothing left to read after this batch
    extracted: tuple[RawEvent, ...] = ()
    normalised: tuple[RawEvent, ...] = ()
    metrics: tuple[TelemetryMetrics, ...] = ()
    run_id: int = 0
    outcome: TelemetryOutcome | None = None
    notes: tuple[str, ...] = field(default=())
