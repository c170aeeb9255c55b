"""What the agent does with a closed telemetry window and with an anomaly to heal."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from agent.config import Config

if TYPE_CHECKING:
    from agent.heal import AnomalyOutcome

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


def heal(config: Config, anomaly_id: str) -> str:
    """Diagnose, fix and validate one anomaly within the budget; `heal` delivers the best patch
    in the configured mode. Returns a one-line outcome (also logged)."""
    from agent import heal as healing
    from agent.conductor import Conductor
    from agent.records import Anomaly

    with Conductor(config) as conductor, conductor.grouped():
        anomaly = conductor.store().get(anomaly_id, Anomaly)
        if anomaly is None:
            return _say(f"anomaly {anomaly_id}: not in the store {config.store}; skipped")
        outcome = healing.heal(conductor, [anomaly], config.budget_s, progress=log.info)
    result = outcome.results[0]
    if result.best is None:
        return _say(f"anomaly {anomaly_id} ({anomaly.subject}): {result.reason}")
    return _say(
        f"anomaly {anomaly_id} ({anomaly.subject}): validated patch {result.best.patch.id} "
        f"({result.best.patch.strategy}) at {result.path}{_delivered(result)}"
    )


def _delivered(result: AnomalyOutcome) -> str:
    deployment = result.deployment
    if deployment is None:
        return ""
    branch = f", branch {deployment.branch}" if deployment.branch else ""
    reason = f" ({deployment.reason})" if deployment.reason else ""
    return f"; delivery {deployment.status.value}{branch}{reason}"


def _say(line: str) -> str:
    log.info("%s", line)
    return line
