"""Anomalies waiting for healing: a bounded queue with counted drops and one named worker."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("selfheal.healqueue")

_STOP = ""  # an empty id is never a real anomaly id


@dataclass
class HealStats:
    queued: int = 0
    dropped: int = 0  # the queue was full
    duplicates: int = 0  # handed over more than once
    done: int = 0
    failed: int = 0


class HealQueue:
    """Takes anomaly ids from the test runs, the plugin hand-off and telemetry windows and
    heals them one at a time; a full queue drops (and counts) rather than blocking a producer."""

    def __init__(self, heal: Callable[[str], None], maxsize: int = 100) -> None:
        self._heal = heal
        self._queue: queue.Queue[str] = queue.Queue(maxsize)
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.stats = HealStats()
        self.current = ""
        self._thread = threading.Thread(target=self._loop, name="selfheal-heal", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, ids: list[str]) -> dict[str, int]:
        """Queue the ids not seen before; returns counts for the caller (the control endpoint)."""
        accepted = dropped = duplicates = 0
        with self._lock:
            for anomaly_id in ids:
                if anomaly_id in self._seen:
                    duplicates += 1
                    continue
                try:
                    self._queue.put_nowait(anomaly_id)
                except queue.Full:
                    dropped += 1
                    continue
                self._seen.add(anomaly_id)
                accepted += 1
            self.stats.queued += accepted
            self.stats.dropped += dropped
            self.stats.duplicates += duplicates
        if dropped:
            log.warning("heal queue full: dropped %d anomaly id(s)", dropped)
        return {"accepted": accepted, "dropped": dropped, "duplicates": duplicates}

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the anomaly being healed (up to `timeout`), drop the rest."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            anomaly_id = self._queue.get()
            if anomaly_id == _STOP:
                return
            self.current = anomaly_id
            try:
                self._heal(anomaly_id)
                self.stats.done += 1
            except Exception:  # one failed healing must not stop the next
                self.stats.failed += 1
                log.exception("healing anomaly %s failed", anomaly_id)
            finally:
                self.current = ""
