"""Phase 7: learn which fixes hold, per (anomaly kind, strategy), from later runs."""
