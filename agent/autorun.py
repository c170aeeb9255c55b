"""Runs the tests a change affects, one pytest subprocess at a time, with the plugin enabled."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.handoff import CHILD_ENV
from agent.warm import WarmPytest
from agent.watcher import needs_full_run

log = logging.getLogger("selfheal.autorun")

OUTPUT_FILE = "agent-last-run.txt"
FULL_RUN = ""  # submitted alone (an empty batch) it asks for the whole suite

# `changed files -> node ids or paths to run`; None means "all tests" (no usable map).
Selector = Callable[[Path, frozenset[str]], list[str] | None]  # (store, changed)
Popen = subprocess.Popen[bytes]


@dataclass(frozen=True)
class TestRun:
    """One pytest subprocess the agent ran, and what came of it."""

    __test__ = False  # not a pytest test class

    changed: frozenset[str]
    selected: tuple[str, ...] | None  # None: the whole suite
    started_ns: int
    spawn_latency_s: float  # from the batch arriving to the subprocess existing
    exit_code: int = -1
    duration_s: float = 0.0
    timed_out: bool = False
    output_tail: tuple[str, ...] = field(default=())
    warm: bool = False  # started in a pre-started pytest process


def select_affected(store_path: Path, changed: frozenset[str]) -> list[str] | None:
    """Tests whose recorded coverage touches the changed files; None runs everything.

    File-level on purpose: a line-level match would miss tests whose lines merely moved.
    Changed test files run themselves; a changed file the map never measured (new, or not
    imported when the map was made) means the map cannot answer, so everything runs.
    """
    if FULL_RUN in changed or needs_full_run(changed) or not store_path.exists():
        return None
    try:
        return _from_coverage_map(store_path, changed)
    except Exception:  # a broken map must not stop the agent: run everything instead
        log.exception("coverage map unusable; running all tests")
        return None


def _from_coverage_map(store_path: Path, changed: frozenset[str]) -> list[str] | None:
    from agent import coverage_map
    from agent.store import Store

    with Store.open(store_path) as store:
        map_id = coverage_map.latest_id(store)
        cmap = coverage_map.load(store, map_id, changed) if map_id else None
    if cmap is None:
        return None
    selected: set[str] = set()
    for path in changed:
        if is_test_file(path):
            selected.add(path)
        elif path in cmap.statements:
            selected.update(cmap.tests_touching(path))
        else:
            return None
    files = {s for s in selected if "::" not in s}
    return sorted(s for s in selected if s.split("::", 1)[0] not in files or "::" not in s)


def is_test_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


class AutoRunner:
    """Coalesces change batches and runs one pytest subprocess at a time on a named thread."""

    def __init__(
        self,
        root: Path,
        store: Path,
        on_result: Callable[[TestRun], None],
        *,
        select: Selector = select_affected,
        timeout_s: float = 600.0,
        pytest_args: Sequence[str] = (),
        warm: bool = True,
    ) -> None:
        self.root = root
        self.store = store
        self._on_result = on_result
        self._select = select
        self.timeout_s = timeout_s
        self._pytest_args = tuple(pytest_args)
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._pending_since = 0.0
        self._stopping = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._use_warm = warm
        self._warm: WarmPytest | None = None
        self._env = {**os.environ, CHILD_ENV: "1", "SELFHEAL_STORE": str(store)}
        self.runs = 0
        self.last: TestRun | None = None
        self._thread = threading.Thread(target=self._loop, name="selfheal-tests", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, changed: frozenset[str]) -> None:
        """Queue a batch; batches that arrive during a run merge into the next run."""
        with self._cond:
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending.update(changed or {FULL_RUN})
            self._cond.notify()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            _kill_group(proc, grace_s=min(5.0, timeout / 2))
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._warm is not None:
            self._warm.discard()
            self._warm = None

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._proc is not None or bool(self._pending)

    def _loop(self) -> None:
        while True:
            self._keep_warm()
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                changed = frozenset(self._pending)
                since = self._pending_since
                self._pending.clear()
            try:
                result = self._run(changed, since)
            except Exception:  # one bad run must not end the watching
                log.exception("test run failed to start")
                continue
            self.runs += 1
            self.last = result
            try:
                self._on_result(result)
            except Exception:
                log.exception("handling the test run result failed")

    def pytest_argv(self, selected: list[str] | None) -> list[str]:
        args = ["--selfheal", "-q", "-p", "no:cacheprovider", *self._pytest_args]
        if selected is None and not any(a.startswith("--selfheal-coverage") for a in args):
            # A whole-suite run happens when the map cannot answer (none yet, a file it never
            # measured): measure coverage then, so the next change runs only what it affects.
            args.append("--selfheal-coverage=always")
        return [*args, *(selected or [])]

    def command(self, selected: list[str] | None) -> list[str]:
        return [sys.executable, "-m", "pytest", *self.pytest_argv(selected)]

    def _keep_warm(self) -> None:
        if not self._use_warm or self._stopping:
            return
        if self._warm is None or not self._warm.alive():
            try:
                self._warm = WarmPytest(self.root, self._env)
            except OSError as exc:
                log.warning("cannot pre-start pytest: %s", exc)
                self._warm = None

    def _spawn(self, selected: list[str] | None, out_path: Path) -> tuple[Popen, bool]:
        """The warm process when it is there and alive, else a cold `python -m pytest`."""
        warm, self._warm = self._warm, None
        if warm is not None:
            proc = warm.run(self.pytest_argv(selected), out_path)
            if proc is not None:
                return proc, True
        with out_path.open("wb") as out:
            proc = subprocess.Popen(
                self.command(selected),
                cwd=self.root,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed whole at the timeout
            )
        return proc, False

    def _run(self, changed: frozenset[str], since: float) -> TestRun:
        selected = self._select(self.store, changed)
        if selected is not None and not selected:
            log.info("no test covers %s; nothing to run", ", ".join(sorted(changed)[:5]))
            return TestRun(changed, (), time.time_ns(), time.monotonic() - since, exit_code=5)
        out_path = self.store.parent / OUTPUT_FILE
        out_path.parent.mkdir(parents=True, exist_ok=True)
        started_ns = time.time_ns()
        t0 = time.monotonic()
        with self._cond:
            if self._stopping:
                raise RuntimeError("stopping")
            proc, warm = self._spawn(selected, out_path)
            self._proc = proc
        latency = time.monotonic() - since
        what = "all tests" if selected is None else f"{len(selected)} test(s)"
        how = "pre-started pytest" if warm else "pytest"
        log.info("running %s for %d changed file(s) (%s)", what, len(changed - {FULL_RUN}), how)
        timed_out = False
        try:
            code = proc.wait(self.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc, grace_s=5.0)
            code = proc.wait()
        finally:
            with self._cond:
                self._proc = None
        tail = _tail(out_path)
        duration = time.monotonic() - t0
        log.info("tests finished: exit %d in %.1fs%s", code, duration, " (timed out)" * timed_out)
        sel = None if selected is None else tuple(selected)
        return TestRun(changed, sel, started_ns, latency, code, duration, timed_out, tail, warm)


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the run's process group, SIGKILL what is left after `grace_s`."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 5) -> tuple[str, ...]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    return tuple(line for line in text.strip().splitlines()[-lines:])
