"""Phase 4, fix.generate: candidate patches from every strategy, made by git, syntax-checked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.phases.fix.base import Candidate, FixWork, Strategy
from agent.phases.fix.beats import HANDLERS, FixBaton, code_patches

if TYPE_CHECKING:
    from agent.conductor import Conductor
    from agent.phases.diagnosis.codebase import CodebaseInfo
    from agent.records import Anomaly, Diagnosis

SEQUENCE = "fix.generate"

__all__ = [
    "HANDLERS",
    "SEQUENCE",
    "Candidate",
    "FixBaton",
    "FixWork",
    "Strategy",
    "code_patches",
    "generate",
]


def generate(
    conductor: Conductor,
    anomaly: Anomaly,
    diagnosis: Diagnosis,
    codebase: CodebaseInfo | None = None,
    *,
    deadline: float | None = None,
    max_patches: int = 200,
) -> FixBaton:
    """Play fix.generate; the baton holds the candidates and their stored patches, best first."""
    baton = FixBaton(
        anomaly=anomaly, diagnosis=diagnosis, codebase=codebase, max_patches=max_patches
    )
    result: FixBaton = conductor.play(SEQUENCE, baton, deadline=deadline)
    return result
