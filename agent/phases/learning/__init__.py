"""Phase 7: learn which fixes hold, per (anomaly kind, strategy), from later runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.phases.learning.beats import HANDLERS, TrackBaton, TrackRequest

if TYPE_CHECKING:
    from agent.conductor import Conductor

SEQUENCE = "learning.track"

__all__ = ["HANDLERS", "SEQUENCE", "TrackBaton", "TrackRequest", "track"]


def track(conductor: Conductor, request: TrackRequest | None = None) -> TrackBaton:
    """Play learning.track: find applied fixes in git history, judge them on later runs,
    update the strategy model. Cheap when no patch is waiting to be judged."""
    baton: TrackBaton = conductor.play(SEQUENCE, TrackBaton(request or TrackRequest()))
    return baton
