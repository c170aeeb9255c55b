"""Phase 6: deliver validated patches as patch files, proposal branches, PRs or guarded merges."""

from agent.phases.deployment.beats import HANDLERS, DeployBaton, DeployRequest

__all__ = ["HANDLERS", "DeployBaton", "DeployRequest"]
