"""What the agent does with a closed telemetry window and with an anomaly to heal."""

from __future__ import annotations

import logging
import time

from agent.config import Config

log = logging.getLogger("selfheal.agent.pipeline")


def detect_window(config: Config, run_id: int) -> list[str]:
    """Play anomaly.detect on one closed window of received spans; the new anomalies' ids."""
    from agent.conductor import Conductor
    from agent.phases.anomaly import DetectRequest, detect

    # A conductor per play: its beats become a `pipeline` run in the store like any telemetry.
    with Conductor(config) as conductor:
        found = detect(
            conductor, DetectRequest(run_id=run_id, root=config.root, detected_ns=time.time_ns())
        )
    for anomaly in found:
        log.info("anomaly %s in window run %d: %s", anomaly.id, run_id, anomaly.description)
    return [a.id for a in found]


def heal(config: Config, anomaly_id: str) -> None:
    """Diagnose, fix, validate and deliver one anomaly under the configured budget and mode."""
    log.info("anomaly %s recorded; healing is not available in this installation", anomaly_id)
