"""Phase 7: learn which fixes hold, per (anomaly kind, strategy), from later runs."""

from agent.phases.learning.beats import HANDLERS, TrackBaton, TrackRequest

__all__ = ["HANDLERS", "TrackBaton", "TrackRequest"]
