"""The seven beats of telemetry.parse (SEED-HANDLERS.md phase 1)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from agent.conductor import BeatContext
from agent.errors import TelemetryError
from agent.handlers import HandlerSet
from agent.phases.telemetry.baton import (
    RUN_KINDS,
    RunInfo,
    TelemetryBaton,
    TelemetryOutcome,
    TelemetryRequest,
)
from agent.phases.telemetry.normalise import normalise
from agent.phases.telemetry.raw import RawEvent
from agent.phases.telemetry.rows import metric_rows, span_rows
from agent.phases.telemetry.sources import check_unchanged, discover, read_batch
from agent.records import TelemetryEvent

HANDLERS = HandlerSet("telemetry")
replace = dataclasses.replace


@HANDLERS.beat("parseTelemetryRequested", "pure")
def parse_telemetry_requested(baton: TelemetryBaton, ctx: BeatContext) -> TelemetryBaton:
    """Check the request and open the run record (first batch), or count the next batch."""
    if baton.outcome is not None:
        raise TelemetryError("this ingest is already complete")
    if baton.run is not None:
        return replace(baton, batch=baton.batch + 1)
    problems = request_problems(baton.request)
    if problems:
        raise TelemetryError("; ".join(problems))
    req = baton.request
    run = RunInfo(req.run_kind, req.commit, req.dirty, req.env_key, time.time_ns())
    return replace(baton, run=run, batch=1)


def request_problems(req: TelemetryRequest) -> list[str]:
    problems = []
    if req.run_kind not in RUN_KINDS:
        problems.append(f"run kind {req.run_kind!r} is not one of {', '.join(RUN_KINDS)}")
    if not req.sources and not req.events and req.feed is None:
        problems.append("nothing to ingest: no sources and no events")
    if req.batch_events < 1 or req.max_operations < 1 or req.exemplars < 0:
        problems.append("batch_events and max_operations must be positive, exemplars >= 0")
    if req.hand_on and not req.keep_raw:
        problems.append("hand_on needs keep_raw: only a run stored whole can be handed on")
    if not all(isinstance(p, Path) for p in req.sources):
        problems.append("sources must be paths")
    if not all(isinstance(e, TelemetryEvent) for e in req.events):
        problems.append("events must be TelemetryEvent records")
    return problems


@HANDLERS.beat("loadLogFiles", "stage-crew")
def load_log_files(baton: TelemetryBaton, ctx: BeatContext) -> TelemetryBaton:
    """Find the source files (first batch); later, check the file being read was not replaced."""
    if baton.batch == 1:
        sources = discover(baton.request.sources)
        ctx.progress(f"telemetry: {len(sources)} source file(s)")
        return replace(baton, sources=sources)
    if baton.cursor.index < len(baton.sources):
        check_unchanged(baton.sources[baton.cursor.index], baton.cursor)
    return baton


@HANDLERS.beat("extractTelemetryEvents", "stage-crew")
def extract_telemetry_events(baton: TelemetryBaton, ctx: BeatContext) -> TelemetryBaton:
    """Stream-parse up to one batch of events; malformed lines are counted, never raised."""
    out: list[RawEvent] = []
    if not baton.memory_read:
        out.extend(RawEvent.from_record(event) for event in baton.request.events)
    state = baton.state
    cursor = read_batch(baton.sources, baton.cursor, baton.request.batch_events, state.stats, out)
    chunk, fed_all = state.fed
    out.extend(RawEvent.from_record(event) for event in chunk)
    state.events += len(out)
    return replace(
        baton,
        extracted=tuple(out),
        previous=baton.cursor,
        cursor=cursor,
        memory_read=True,
        exhausted=cursor.index >= len(baton.sources) and fed_all,
    )


@HANDLERS.beat("normalizeTelemetryData", "pure")
def normalize_telemetry_data(baton: TelemetryBaton, ctx: BeatContext) -> TelemetryBaton:
    """Code locations, exception signatures and parent operations for this batch."""
    done = normalise(baton.extracted, baton.state.links, final=baton.exhausted)
    return replace(baton, extracted=(), normalised=tuple(done))


@HANDLERS.beat("aggregateTelemetryMetrics", "pure")
def aggregate_telemetry_metrics(baton: TelemetryBaton, ctx: BeatContext) -> TelemetryBaton:
    """Fold the batch into the per-operation aggregates; emit metrics after the last batch."""
    aggregator = baton.state.aggregator
    aggregator.add_all(baton.normalised)
    if not baton.exhausted:
        return baton
    return replace(baton, metrics=aggregator.metrics())


@HANDLERS.beat("storeTelemetryDatabase", "stage-crew")
def store_telemetry_database(baton: TelemetryBaton, ctx: BeatContext) -> TelemetryBaton:
    """Open the run, write raw events (all, or exemplars at the end) and the metrics."""
    assert baton.run is not None  # beat 1 opened it
    store = ctx.store
    run_id = baton.run_id or store.begin_run(
        baton.run.kind, baton.run.commit, baton.run.dirty, baton.run.env_key
    )
    state = baton.state
    request = baton.request
    if request.keep_raw:
        state.stored += store.insert_event_rows(span_rows(run_id, baton.normalised))
    if baton.exhausted:
        if not request.keep_raw:
            state.stored += store.insert_events(run_id, state.aggregator.exemplar_events())
        store.insert_metric_rows(metric_rows(run_id, baton.metrics))
        store.end_run(run_id, "ok", run_summary(baton))
    if request.hand_on:
        state.kept.extend(baton.normalised)
    return replace(baton, run_id=run_id, normalised=())


def run_summary(baton: TelemetryBaton) -> dict[str, Any]:
    state = baton.state
    return {
        "events": state.events,
        "stored_events": state.stored,
        "operations": len(baton.metrics),
        "sources": len(baton.sources),
        "malformed": sum(c.malformed for c in state.stats.by_source.values()),
        "ignored": sum(c.ignored for c in state.stats.by_source.values()),
        "unresolved_parents": state.links.unresolved,
        "overflow": state.aggregator.overflow,
        "batches": baton.batch,
        "keep_raw": baton.request.keep_raw,
    }


@HANDLERS.beat("parseTelemetryCompleted", "pure")
def parse_telemetry_completed(baton: TelemetryBaton, ctx: BeatContext) -> TelemetryBaton:
    """Hand the run id and counts on after the last batch; guard against a stalled read."""
    if not baton.exhausted:
        # Another play would read the same bytes forever (a feed moves on by itself).
        if baton.cursor == baton.previous and baton.request.feed is None:
            raise TelemetryError(f"no progress reading past {baton.cursor} of {baton.sources}")
        return baton
    state = baton.state
    by_source = state.stats.by_source
    outcome = TelemetryOutcome(
        run_id=baton.run_id,
        events=state.events,
        stored_events=state.stored,
        sources=tuple(s.path for s in baton.sources),
        malformed={
            s.path: by_source[s.path].malformed for s in baton.sources if s.path in by_source
        },
        ignored=sum(c.ignored for c in by_source.values()),
        metrics=baton.metrics,
        edges=sum(len(m.edges) for m in baton.metrics),
        signatures=len({s.signature for m in baton.metrics for s in m.exceptions}),
        unresolved_parents=state.links.unresolved,
        overflow=state.aggregator.overflow,
        batches=baton.batch,
        handed_on=tuple(state.kept),
    )
    ctx.progress(f"telemetry: run {baton.run_id}, {state.events} events")
    return replace(baton, outcome=outcome)
