"""Phase 1, telemetry.parse: read spans, logs and spool segments; store per-operation metrics."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import TYPE_CHECKING

from agent.errors import SelfHealError
from agent.phases.telemetry.baton import (
    IngestState,
    TelemetryBaton,
    TelemetryOutcome,
    TelemetryRequest,
)
from agent.phases.telemetry.beats import HANDLERS, run_summary

if TYPE_CHECKING:
    from agent.conductor import Conductor

SEQUENCE_ID = "telemetry.parse"

__all__ = ["HANDLERS", "SEQUENCE_ID", "TelemetryOutcome", "TelemetryRequest", "ingest"]


def ingest(conductor: Conductor, request: TelemetryRequest) -> TelemetryOutcome:
    """Play telemetry.parse once per batch until every source is read; one pipeline run."""
    baton = TelemetryBaton(request=request, state=IngestState.for_request(request))
    with conductor.grouped(), gc_paused():
        while baton.outcome is None:
            try:
                if request.feed is not None:  # the next chunk, outside the sequence's time
                    conductor.flush_spans(final=False)  # while waiting, not at the end
                    baton.state.fed = request.feed()
                baton = conductor.play(SEQUENCE_ID, baton)
            except SelfHealError:
                _mark_failed(conductor, baton)
                raise
    return baton.outcome


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch of spans is alive.

    Everything an ingest allocates is acyclic (decoded JSON, slotted events), so reference
    counting frees it all; but each batch keeps ~10^5 container objects alive, and the
    collector's repeated traversals of them cost about a third of the ingest time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _mark_failed(conductor: Conductor, baton: TelemetryBaton) -> None:
    """Keep what earlier batches stored, and say the run did not finish."""
    if baton.run_id:
        conductor.store().end_run(baton.run_id, "failed", run_summary(baton))
