"""Phase 3, diagnosis.analyze: locate the cause of an anomaly and recommend fix strategies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.phases.diagnosis.beats import HANDLERS, DiagnosisBaton

if TYPE_CHECKING:
    from agent.conductor import Conductor
    from agent.records import Anomaly, Diagnosis

SEQUENCE = "diagnosis.analyze"

__all__ = ["HANDLERS", "SEQUENCE", "DiagnosisBaton", "diagnose", "diagnose_baton"]


def diagnose_baton(
    conductor: Conductor, anomaly: Anomaly, deadline: float | None = None
) -> DiagnosisBaton:
    """Play diagnosis.analyze and return the final baton (the Diagnosis and its evidence)."""
    baton: DiagnosisBaton = conductor.play(
        SEQUENCE, DiagnosisBaton(anomaly=anomaly), deadline=deadline
    )
    return baton


def diagnose(conductor: Conductor, anomaly: Anomaly, deadline: float | None = None) -> Diagnosis:
    """Diagnose one anomaly; the Diagnosis is stored and returned."""
    baton = diagnose_baton(conductor, anomaly, deadline)
    if baton.diagnosis is None:
        raise RuntimeError("diagnosis.analyze ended without a diagnosis")
    return baton.diagnosis
