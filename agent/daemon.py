"""The agent: watcher, test runs, receiver, spool ingest and healing on named threads."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import lifecycle as lc
from agent.autorun import AutoRunner, TestRun
from agent.config import Config
from agent.control import ControlApi, ControlServer
from agent.errors import ConfigError
from agent.healqueue import HealQueue
from agent.ingest import SpoolIngestor
from agent.records import Anomaly, TelemetryEvent
from agent.store import Store
from agent.watcher import ObserverLike, WorkspaceWatcher, native_observer

log = logging.getLogger("selfheal.agent")

HEAL_STOP_S = 5.0


@dataclass(frozen=True)
class AgentOptions:
    """Run-time choices; defaults come from `[tool.selfheal]` (see `options_from`)."""

    port: int = 0  # control endpoint on 127.0.0.1; 0 = any free port
    otlp_port: int = 4318  # -1 = no receiver
    debounce_s: float = 0.3
    window_s: float = 60.0
    queue_size: int = 100
    watch: bool = True
    test_timeout_s: float = 600.0
    stop_timeout_s: float = 30.0


def options_from(config: Config, **overrides: Any) -> AgentOptions:
    base = AgentOptions(
        otlp_port=config.agent_otlp_port,
        debounce_s=config.agent_debounce_ms / 1000.0,
        window_s=config.agent_window_s,
        queue_size=config.agent_queue,
        test_timeout_s=config.validation_timeout_s * 2,
    )
    values = {k: v for k, v in overrides.items() if v is not None}
    return AgentOptions(**{**base.__dict__, **values})


class Agent:
    """Everything the agent runs; `running()` starts it all and stops it in reverse order."""

    def __init__(
        self,
        config: Config,
        options: AgentOptions,
        token: str,
        *,
        observer_factory: Callable[[], ObserverLike] = native_observer,
    ) -> None:
        self.config = config
        self.options = options
        self.token = token
        self.started_ns = time.time_ns()
        self._observer_factory = observer_factory
        self.spool_dir = config.selfheal_dir / "spool"
        self.heal = HealQueue(self._heal_one, options.queue_size)
        self.ingestor = SpoolIngestor(
            config.store,
            self.spool_dir,
            self._window_closed,
            window_s=options.window_s,
            active_segments=self._active_segments,
        )
        self.runner = AutoRunner(
            config.root, config.store, self._test_run_done, timeout_s=options.test_timeout_s
        )
        self.control: ControlServer | None = None
        self.receiver: Any = None
        self.watcher: WorkspaceWatcher | None = None
        self._spool_writer: Any = None
        self._spool_lock = threading.Lock()
        self.anomalies_seen = 0
        self.last_heal = ""

    @contextmanager
    def running(self) -> Iterator[Agent]:
        with Store.open(self.config.store):
            pass  # create and migrate once, here, so a bad store fails the start loudly
        with ExitStack() as stack:
            self.control = ControlServer(
                ControlApi(self.status, self.heal.offer), self.token, self.options.port
            )
            stack.enter_context(self.control)
            self.heal.start()
            # A heal can take its whole budget: stop waits a little, then the daemon thread
            # ends with the process (the next start picks new anomalies up again).
            stack.callback(self.heal.stop, HEAL_STOP_S)
            _start(stack, self.ingestor)
            self._start_receiver(stack)
            _start(stack, self.runner)
            if self.options.watch and not self._has_test_runs():
                log.info("no earlier test run in the store: running all tests for a baseline")
                self.runner.submit(frozenset())
            if self.options.watch:
                self.watcher = WorkspaceWatcher(
                    self.config.root,
                    self.runner.submit,
                    debounce_s=self.options.debounce_s,
                    observer_factory=self._observer_factory,
                )
                stack.enter_context(self.watcher)
            log.info(
                "agent ready in %s (control port %d, OTLP port %s)",
                self.config.root,
                self.control.port,
                self.otlp_port or "off",
            )
            yield self
            log.info("agent stopping")
        self._close_spool()
        log.info("agent stopped")

    @property
    def otlp_port(self) -> int:
        return int(self.receiver.port) if self.receiver is not None else 0

    # Telemetry ----------------------------------------------------------------------------

    def _start_receiver(self, stack: ExitStack) -> None:
        if self.options.otlp_port < 0:
            return
        from agent.receiver import Receiver, ReceiverSettings

        # ack_after_store: a 200 means the spans are in the spool and fsynced, so a kill -9
        # right after the answer loses nothing; the ingestor moves them on exactly once.
        settings = ReceiverSettings(port=self.options.otlp_port, ack_after_store=True)
        receiver = Receiver(self._spool_sink, settings)
        try:
            receiver.start()
        except ConfigError as exc:
            log.warning("%s; running without the OTLP receiver", exc)
            return
        self.receiver = receiver
        stack.callback(receiver.stop, self.options.stop_timeout_s)

    def _spool_sink(self, events: list[TelemetryEvent]) -> None:
        from agent.spool import SpoolWriter

        with self._spool_lock:
            if self._spool_writer is None:
                self._spool_writer = SpoolWriter(self.spool_dir)
            self._spool_writer.write(events)
            self._spool_writer.flush()
        self.ingestor.wake()

    def _active_segments(self) -> set[Path]:
        with self._spool_lock:
            writer = self._spool_writer
            return {writer.path} if writer is not None and writer.path is not None else set()

    def _close_spool(self) -> None:
        with self._spool_lock:
            if self._spool_writer is not None:
                self._spool_writer.close()
                self._spool_writer = None

    def _window_closed(self, run_id: int) -> None:
        from agent import agentpipe

        ids = agentpipe.detect_window(self.config, run_id)
        self._found(ids, f"telemetry window run {run_id}")

    # Test runs ----------------------------------------------------------------------------

    def _test_run_done(self, run: TestRun) -> None:
        with Store.open(self.config.store) as store:
            found = [a for a in store.find(Anomaly, limit=200) if a.detected_ns >= run.started_ns]
        self._found([a.id for a in found], f"test run ({len(run.changed)} changed file(s))")
        for anomaly in found:
            log.info("anomaly %s: %s %s", anomaly.id, anomaly.kind.value, anomaly.description)

    def _has_test_runs(self) -> bool:
        with Store.open(self.config.store) as store:
            row = store.conn.execute("SELECT 1 FROM runs WHERE kind = 'test' LIMIT 1")
            return row.fetchone() is not None

    def _found(self, ids: list[str], where: str) -> None:
        if not ids:
            return
        self.anomalies_seen += len(ids)
        log.info("%d anomal%s from %s", len(ids), "y" if len(ids) == 1 else "ies", where)
        self.heal.offer(ids)

    def _heal_one(self, anomaly_id: str) -> None:
        from agent import agentpipe

        self.last_heal = agentpipe.heal(self.config, anomaly_id)

    # Status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        last = self.runner.last
        receiver = self.receiver.stats if self.receiver is not None else None
        return {
            "pid": os.getpid(),
            "root": str(self.config.root),
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 1),
            "otlp_port": self.otlp_port,
            "watching": self.watcher is not None,
            "polling": bool(self.watcher and self.watcher.polling),
            "change_batches": self.watcher.batches if self.watcher else 0,
            "test_runs": self.runner.runs,
            "testing": self.runner.busy,
            "last_run": None
            if last is None
            else {
                "exit_code": last.exit_code,
                "started_ns": last.started_ns,
                "spawn_latency_s": round(last.spawn_latency_s, 4),
                "duration_s": round(last.duration_s, 2),
                "selected": None if last.selected is None else list(last.selected),
                "changed": sorted(last.changed),
            },
            "ingest": self.ingestor.stats.__dict__,
            "received_spans": receiver.accepted_spans if receiver else 0,
            "anomalies_seen": self.anomalies_seen,
            "heal": {**self.heal.stats.__dict__, "pending": self.heal.pending},
            "last_heal": self.last_heal,
        }


def _start(stack: ExitStack, part: Any) -> None:
    part.start()
    stack.callback(part.stop)


# The process --------------------------------------------------------------------------------


def run_agent(
    config: Config,
    options: AgentOptions,
    *,
    to_stderr: bool,
    ready: Callable[[lc.AgentStatus], None] | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Hold the lock, start everything, write the status file, wait for SIGTERM/SIGINT."""
    paths = lc.Paths(config.selfheal_dir)
    stop = stop_event or threading.Event()
    with lc.hold_lock(paths):
        logger = lc.setup_logging(paths, to_stderr=to_stderr)
        restore = _install_signals(stop) if stop_event is None else None
        try:
            agent = Agent(config, options, lc.new_token(paths))
            with agent.running():
                status = _status_for(agent, paths)
                lc.write_status(paths, status)
                if ready is not None:
                    ready(status)
                try:
                    while not stop.wait(5.0):  # signals set the event; the timeout is a backstop
                        pass
                finally:
                    lc.remove_status(paths, os.getpid())
        finally:
            if restore is not None:
                restore()
            lc.teardown_logging(logger)
    return 0


def _status_for(agent: Agent, paths: lc.Paths) -> lc.AgentStatus:
    assert agent.control is not None
    return lc.AgentStatus(
        pid=os.getpid(),
        port=agent.control.port,
        started_ns=agent.started_ns,
        proc_start=lc.process_start(os.getpid()),
        token_file=str(paths.token),
        log_file=str(paths.log),
        root=str(agent.config.root),
        otlp_port=agent.otlp_port,
    )


def _install_signals(stop: threading.Event) -> Callable[[], None]:
    def handler(signum: int, frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
