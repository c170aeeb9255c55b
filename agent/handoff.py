"""A `pytest --selfheal` run hands its anomalies to the project's running agent, if there is one."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from agent.config import Config

log = logging.getLogger("selfheal.handoff")

CHILD_ENV = "SELFHEAL_AGENT_CHILD"  # set by the agent on the test runs it starts itself


@dataclass(frozen=True)
class HandOff:
    """Anomalies left to the agent, instead of being healed inside the test run."""

    pid: int
    accepted: int
    dropped: int = 0
    note: str = ""

    def line(self) -> str:
        if self.note:
            return self.note
        text = f"{self.accepted} anomal{'y' if self.accepted == 1 else 'ies'} handed to the agent"
        text += f" (pid {self.pid})"
        return text + (f"; its queue was full for {self.dropped}" if self.dropped else "")


def hand_off(config: Config, anomaly_ids: Sequence[str]) -> HandOff | None:
    """Give the anomalies to the running agent of `config.root`; None means heal them here.

    Never raises: any trouble reaching the agent falls back to healing inline.
    """
    ids = [i for i in anomaly_ids if i]
    if not ids or config.agent_handoff == "off":
        return None
    if os.environ.get(CHILD_ENV) == "1":
        # The agent started this run and picks up its anomalies from the store itself.
        return HandOff(os.getppid(), len(ids), note="left to the agent that started this run")
    try:
        return _post(config, ids)
    except Exception as exc:  # a broken or busy agent must not cost the user the healing
        log.debug("hand-off failed: %s", exc)
        return None


def _post(config: Config, ids: list[str]) -> HandOff | None:
    from agent import lifecycle as lc
    from agent.control import ANOMALIES_PATH, call

    code, status = lc.check(lc.Paths(config.selfheal_dir))
    if code != lc.RUNNING or status is None:
        return None
    reply_code, body = call(status.port, lc.read_token(status), ANOMALIES_PATH, {"ids": ids})
    if reply_code != 202 or not isinstance(body, dict):
        return None
    accepted = int(body.get("accepted", 0)) + int(body.get("duplicates", 0))
    dropped = int(body.get("dropped", 0))
    if dropped and not accepted:
        return None  # the agent could take none of them: heal here after all
    return HandOff(status.pid, accepted, dropped)
