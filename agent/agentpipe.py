"""What the agent does with a closed telemetry window and with an anomaly to heal."""

from __future__ import annotations

import logging

from agent.config import Config

log = logging.getLogger("selfheal.agent.pipeline")


def detect_window(config: Config, run_id: int) -> list[str]:
    """Aggregate one closed window of received spans and detect anomalies in it; their ids."""
    return []


def heal(config: Config, anomaly_id: str) -> None:
    """Diagnose, fix, validate and deliver one anomaly under the configured budget and mode."""
    log.info("anomaly %s recorded; healing is not available in this installation", anomaly_id)
