"""Phase 6: deliver validated patches as patch files, proposal branches, PRs or guarded merges."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.phases.deployment.beats import HANDLERS, DeployBaton, DeployRequest

if TYPE_CHECKING:
    from agent.conductor import Conductor

SEQUENCE = "deployment.deploy"

__all__ = ["HANDLERS", "SEQUENCE", "DeployBaton", "DeployRequest", "deliver"]


def deliver(conductor: Conductor, request: DeployRequest) -> DeployBaton:
    """Play deployment.deploy for one validated patch; the Deployment is in `baton.deployment()`
    and in the store. Policy refusals are outcomes (status REJECTED), not exceptions."""
    baton: DeployBaton = conductor.play(SEQUENCE, DeployBaton(request))
    return baton
