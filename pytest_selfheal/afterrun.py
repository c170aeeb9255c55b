"""After the tests: the run's spans, the pipeline and the summary, wherever they are made."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import Config
from pytest_selfheal.runfacts import RecordedTest, RunInfo

Sampler = Callable[[Sequence[str], Mapping[str, int]], Mapping[str, tuple[int, ...]]]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunSpec:
    """What the controller knows when the session starts; plain values, it may be pickled."""

    settings: Config
    info: RunInfo
    start_ns: int
    coverage_reason: str
    rerun_argv: tuple[str, ...]
    rerun_cwd: str
    rerun_timeout_s: float


@dataclass(frozen=True)
class EndFacts:
    """What the controller knows when the session ends."""

    end_ns: int
    exitstatus: int
    coverage: Mapping[str, Any] | None = None  # {"per_test": ..., "statements": ...}
    timed: bool = True  # False: the tests ran under coverage tracing
    sampler: bool = False  # the controller can re-run tests in its process


@dataclass
class Outcome:
    """The summary's data (report.summary, without the controller's own problems) and the
    problems met on the way, one line each."""

    data: dict[str, Any]
    problems: list[str] = field(default_factory=list)


class Events:
    """The run's telemetry events, made from test records."""

    def __init__(self, info: RunInfo) -> None:
        from pytest_selfheal.spans import SpanMaker

        self.maker = SpanMaker(info)
        self.tests = 0

    def make(self, batch: Iterable[RecordedTest]) -> list[Any]:
        events = []
        for rec in batch:
            events.extend(self.maker.events(rec))
            self.tests += 1
        return events

    def session(self, spec: RunSpec, end: EndFacts) -> Any:
        """The session span, last: made when the session has ended."""
        event = self.maker.session(spec.start_ns, end.end_ns, end.exitstatus, self.tests)
        self.maker.shutdown()
        return event


def run_recorded(
    spec: RunSpec,
    records: Iterable[RecordedTest],
    end: EndFacts,
    progress: Progress,
    sampler: Sampler | None,
) -> Outcome:
    """The pipeline on a finished run, in this process."""
    from agent.phases.telemetry import gc_paused

    events = Events(spec.info)
    with gc_paused():  # thousands of short-lived acyclic objects: nothing for gc to find
        made = (*events.make(records), events.session(spec, end))
    fields = {"events": made, "coverage": end.coverage, "sampler": sampler, "timed": end.timed}
    with contextlib.ExitStack() as closing:
        return _outcome(spec, progress, fields, closing)


def run_fed(
    spec: RunSpec, feed: Any, parent: Any, progress: Progress, closing: contextlib.ExitStack
) -> Outcome:
    """The pipeline on a run whose events `feed` hands over as its tests end (pipeline.TestRun),
    their `parent` being the session span, which comes last (SpanMaker.session_parent). The
    store is closed by `closing`, after the outcome is sent: closing checkpoints the run's
    writes into the database file, which nobody needs to wait for."""
    return _outcome(spec, progress, {"events": (), "feed": feed, "parents": (parent,)}, closing)


def _outcome(
    spec: RunSpec, progress: Progress, fields: dict[str, Any], closing: contextlib.ExitStack
) -> Outcome:
    """Phases on the run; a store or pipeline error is a problem line, never raised."""
    problems: list[str] = []
    result = _pipeline(spec, progress, fields, problems, closing)
    from pytest_selfheal import report

    return Outcome(report.summary(result, spec.info, [], spec.coverage_reason), problems)


def _pipeline(
    spec: RunSpec,
    progress: Progress,
    fields: dict[str, Any],
    problems: list[str],
    closing: contextlib.ExitStack,
) -> Any:
    from agent.errors import SelfHealError
    from agent.phases.anomaly import RerunSpec
    from agent.pipeline import TestRun, run_after_tests

    store = open_store(spec.settings.store, problems)
    if store is None:
        return None
    closing.callback(store.close)
    info = spec.info
    run = TestRun(
        commit=info.commit,
        dirty=info.dirty,
        env_key=info.env_key,
        root=Path(info.root),
        rerun=RerunSpec(
            argv=spec.rerun_argv,
            cwd=Path(spec.rerun_cwd),
            env={"SELFHEAL_DISABLE": "1"},
            timeout_s=spec.rerun_timeout_s,
        ),
        **fields,
    )
    try:
        return run_after_tests(spec.settings, run, store=store, progress=progress)
    except SelfHealError as exc:
        problems.append(f"selfheal pipeline: {exc}")
    except Exception as exc:  # bookkeeping never turns a green run red
        problems.append(f"selfheal pipeline failed: {type(exc).__name__}: {exc}")
    return None


def open_store(path: Path, problems: list[str]) -> Any:
    """The store, or None with a problem line; a corrupt file is moved aside (never fatal)."""
    from agent.errors import SelfHealError
    from agent.store import Store

    store = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            store = Store.open(path)
        except (SelfHealError, OSError) as exc:
            problems.append(f"cannot open the selfheal store: {exc}")
    problems.extend(str(w.message) for w in caught)
    return store
