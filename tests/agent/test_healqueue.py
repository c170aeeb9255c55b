"""The heal queue: bounded, counted drops, one at a time, failures logged."""

from __future__ import annotations

import threading
import time

import pytest

from agent.healqueue import HealQueue


def test_heals_one_at_a_time_in_order() -> None:
    running = 0
    most = 0
    order: list[str] = []
    lock = threading.Lock()

    def heal(anomaly_id: str) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        order.append(anomaly_id)
        with lock:
            running -= 1

    q = HealQueue(heal, maxsize=10)
    q.start()
    try:
        assert q.offer(["a", "b", "c"]) == {"accepted": 3, "dropped": 0, "duplicates": 0}
        deadline = time.monotonic() + 5
        while q.stats.done < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        q.stop()
    assert order == ["a", "b", "c"] and most == 1


def test_full_queue_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()

    def heal(_id: str) -> None:
        gate.wait(5)

    q = HealQueue(heal, maxsize=2)
    q.start()
    try:
        q.offer(["busy"])
        deadline = time.monotonic() + 5
        while q.current != "busy" and time.monotonic() < deadline:
            time.sleep(0.01)
        got = q.offer(["a", "b", "c", "a"])
        assert got == {"accepted": 2, "dropped": 1, "duplicates": 1}
        assert q.stats.dropped == 1
        assert "heal queue full" in caplog.text
    finally:
        gate.set()
        q.stop()


def test_a_failing_heal_is_logged_and_the_next_runs(caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    def heal(anomaly_id: str) -> None:
        if anomaly_id == "bad":
            raise RuntimeError("no patch")
        done.append(anomaly_id)

    q = HealQueue(heal)
    q.start()
    try:
        q.offer(["bad", "good"])
        deadline = time.monotonic() + 5
        while not done and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        q.stop()
    assert done == ["good"] and q.stats.failed == 1
    assert "healing anomaly bad failed" in caplog.text
