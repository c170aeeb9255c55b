"""Helpers every detector family shares: thresholds, anomaly ids and the detector signature."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from agent.config import Config
from agent.phases.anomaly.model import AnomalyBaton
from agent.records import Anomaly, AnomalyKind

Detector = Callable[[AnomalyBaton, Config], list[Anomaly]]

# Re-runs of a suspect are capped: a sample this large reaches any sensible alpha.
MAX_RERUNS = 30
MIN_BASELINE = 2  # baseline results a test needs before its timing is judged


@dataclass(frozen=True)
class Thresholds:
    ratio: float
    floor_ns: float
    alpha: float
    reruns: int


def thresholds(
    config: Config, ratio: float | None = None, floor_ms: float | None = None
) -> Thresholds:
    """Global settings, overridden per test by the `selfheal` marker's values."""
    return Thresholds(
        ratio=config.perf_ratio if ratio is None else ratio,
        floor_ns=(config.perf_floor_ms if floor_ms is None else floor_ms) * 1e6,
        alpha=config.perf_alpha,
        reruns=config.perf_reruns,
    )


def anomaly_id(run_id: int, kind: AnomalyKind, subtype: str, subject: str) -> str:
    """Stable per run and subject, so re-detecting the same thing replaces, not duplicates."""
    digest = hashlib.sha1(f"{run_id}\0{kind.value}\0{subtype}\0{subject}".encode()).hexdigest()
    return f"an-{digest[:12]}"


def ms(ns: float) -> float:
    return round(ns / 1e6, 3)


def line_ranges(lines: tuple[int, ...] | list[int]) -> str:
    """`3-5,9` for [3, 4, 5, 9]."""
    parts: list[str] = []
    ordered = sorted(set(lines))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)
