"""Workspace watching: watchdog events, filtered and debounced into one batch of changed files."""

from __future__ import annotations

import errno
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedNoWriteEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

log = logging.getLogger("selfheal.watcher")

DEFAULT_DEBOUNCE_S = 0.3
DEFAULT_MAX_DELAY_S = 5.0  # a change that never settles still runs at least this often

# Directory names never worth watching: VCS data, our own files, environments, caches, builds.
IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".selfheal",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".eggs",
        "node_modules",
        ".idea",
        ".vscode",
    }
)
# Files whose change can alter any test's outcome: run everything.
CONFIG_FILES = frozenset({"conftest.py", "pyproject.toml", "setup.cfg", "pytest.ini", "tox.ini"})
SOURCE_SUFFIXES = (".py", ".pyi")

ChangeCallback = Callable[[frozenset[str]], None]


class ObserverLike(Protocol):
    """The part of a watchdog observer we use (Observer and PollingObserver both fit)."""

    name: str

    def schedule(self, event_handler: Any, path: str, *, recursive: bool = False) -> Any: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...
    def is_alive(self) -> bool: ...


def native_observer() -> ObserverLike:
    from watchdog.observers import Observer

    observer: ObserverLike = Observer()
    return observer


def polling_observer() -> ObserverLike:
    from watchdog.observers.polling import PollingObserver

    observer: ObserverLike = PollingObserver(timeout=1.0)
    return observer


def is_ignored_part(part: str) -> bool:
    return part in IGNORED_DIRS or part.endswith(".egg-info")


def is_relevant(rel_path: str) -> bool:
    """Source, tests and test configuration; editor swap files and data files are not."""
    parts = rel_path.split("/")
    if any(is_ignored_part(p) for p in parts[:-1]):
        return False
    name = parts[-1]
    return name.endswith(SOURCE_SUFFIXES) or name in CONFIG_FILES


def needs_full_run(changed: Iterable[str]) -> bool:
    return any(path.rsplit("/", 1)[-1] in CONFIG_FILES for path in changed)


def git_ignored(root: Path, paths: Iterable[str]) -> set[str]:
    """The paths git ignores, asked in one batch (`git check-ignore --stdin -z`)."""
    batch = sorted(set(paths))
    if not batch:
        return set()
    try:
        proc = subprocess.run(
            ["git", "check-ignore", "--stdin", "-z"],
            cwd=root,
            input=b"\0".join(p.encode() for p in batch) + b"\0",
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("git check-ignore failed, using the built-in ignore list only: %s", exc)
        return set()
    # Exit 1 means nothing is ignored; 128 means not a repository (nothing to ask git).
    if proc.returncode not in (0, 1):
        return set()
    return {p.decode() for p in proc.stdout.split(b"\0") if p}


class Debouncer:
    """Collects paths and calls back once they have been quiet for `debounce_s`.

    One named thread; it blocks without a timeout while nothing is pending, so an idle
    watcher costs no CPU.
    """

    def __init__(
        self,
        callback: ChangeCallback,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
        name: str = "selfheal-watch-debounce",
    ) -> None:
        self._callback = callback
        self.debounce_s = debounce_s
        self.max_delay_s = max(max_delay_s, debounce_s)
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._first = 0.0
        self._last = 0.0
        self._stopping = False
        self.batches = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, paths: Iterable[str]) -> None:
        with self._cond:
            now = time.monotonic()
            if not self._pending:
                self._first = now
            self._pending.update(paths)
            self._last = now
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self.batches += 1
            try:
                self._callback(batch)
            except Exception:  # a failing consumer must not kill the watcher
                log.exception("change callback failed")

    def _next_batch(self) -> frozenset[str] | None:
        with self._cond:
            while not self._stopping:
                if not self._pending:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                due = min(self._last + self.debounce_s, self._first + self.max_delay_s)
                if now >= due:
                    batch = frozenset(self._pending)
                    self._pending.clear()
                    return batch
                self._cond.wait(due - now)
            return None


class _EventHandler(FileSystemEventHandler):
    def __init__(self, watcher: WorkspaceWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._watcher.handle(event)
        except Exception:  # watchdog's thread must survive anything we do wrong
            log.exception("watch event %r failed", event)


class WorkspaceWatcher:
    """Watches a project tree and reports changed source/test files, debounced and filtered.

    Use as a context manager. The root is watched without recursion and each top-level
    directory that is not ignored gets a recursive watch, so `.git/`, virtual environments
    and caches never cost inotify watches or events.
    """

    def __init__(
        self,
        root: Path,
        on_change: ChangeCallback,
        *,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
        observer_factory: Callable[[], ObserverLike] = native_observer,
    ) -> None:
        self.root = root.resolve()
        self._on_change = on_change
        self._observer_factory = observer_factory
        self._debouncer = Debouncer(self._flush, debounce_s, max_delay_s)
        self._handler = _EventHandler(self)
        self._observer: ObserverLike | None = None
        self._scheduled: set[str] = set()
        self._venv_cache: dict[str, bool] = {}
        self.polling = False
        self.events_seen = 0

    # Lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._observer = self._start_observer(self._observer_factory)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            log.warning(
                "inotify limit reached (%s); falling back to polling every second. Raise "
                "fs.inotify.max_user_watches / max_user_instances to watch natively.",
                exc.strerror or exc,
            )
            self._scheduled.clear()
            self._observer = self._start_observer(polling_observer)
            self.polling = True
        self._debouncer.start()

    def _start_observer(self, factory: Callable[[], ObserverLike]) -> ObserverLike:
        observer = factory()
        observer.name = "selfheal-watch-observer"
        try:
            self._schedule_tree(observer)
            observer.start()
        except OSError:
            _stop_observer(observer)
            raise
        return observer

    def stop(self) -> None:
        if self._observer is not None:
            _stop_observer(self._observer)
            self._observer = None
        self._debouncer.stop()

    def __enter__(self) -> WorkspaceWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def debounce_s(self) -> float:
        return self._debouncer.debounce_s

    @property
    def batches(self) -> int:
        return self._debouncer.batches

    # Scheduling ---------------------------------------------------------------------------

    def _schedule_tree(self, observer: ObserverLike) -> None:
        observer.schedule(self._handler, str(self.root), recursive=False)
        tops = [p.name for p in self.root.iterdir() if p.is_dir() and not p.is_symlink()]
        wanted = [t for t in tops if self._watchable_top(t)]
        ignored = git_ignored(self.root, wanted)
        for name in sorted(set(wanted) - ignored):
            self._schedule_dir(observer, name)

    def _watchable_top(self, name: str) -> bool:
        if is_ignored_part(name):
            return False
        return not self._is_venv(name)

    def _is_venv(self, top: str) -> bool:
        cached = self._venv_cache.get(top)
        if cached is None:
            cached = (self.root / top / "pyvenv.cfg").is_file()
            self._venv_cache[top] = cached
        return cached

    def _schedule_dir(self, observer: ObserverLike, name: str) -> None:
        if name in self._scheduled:
            return
        observer.schedule(self._handler, str(self.root / name), recursive=True)
        self._scheduled.add(name)

    # Events -------------------------------------------------------------------------------

    def handle(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileOpenedEvent | FileClosedNoWriteEvent):
            return  # reads, not changes
        self.events_seen += 1
        paths = [event.src_path, getattr(event, "dest_path", "")]
        rels = [r for r in (self._relative(p) for p in paths if p) if r]
        if isinstance(event, DirCreatedEvent | DirMovedEvent):
            self._maybe_watch_new_top(rels[-1] if rels else "")
        relevant = [r for r in rels if is_relevant(r) and not self._in_venv(r)]
        if relevant:
            self._debouncer.add(relevant)

    def _relative(self, path: str | bytes) -> str:
        text = path.decode() if isinstance(path, bytes) else path
        try:
            return Path(text).relative_to(self.root).as_posix()
        except ValueError:
            return ""

    def _in_venv(self, rel: str) -> bool:
        top = rel.split("/", 1)[0]
        return "/" in rel and self._is_venv(top)

    def _maybe_watch_new_top(self, rel: str) -> None:
        # A directory created at the top level after start gets its own recursive watch.
        if not rel or "/" in rel or self._observer is None or not self._watchable_top(rel):
            return
        if git_ignored(self.root, [rel]):
            return
        try:
            self._schedule_dir(self._observer, rel)
        except OSError as exc:
            log.warning("cannot watch new directory %s: %s", rel, exc)
            return
        # Files written before the watch existed (`mkdir pkg && cp *.py pkg/`) made no event.
        present = [r for r in self._walk(rel) if is_relevant(r)]
        if present:
            self._debouncer.add(present)

    def _walk(self, rel: str, limit: int = 10_000) -> list[str]:
        found: list[str] = []
        for path in (self.root / rel).rglob("*"):
            if len(found) >= limit:
                break
            if path.is_file():
                found.append(path.relative_to(self.root).as_posix())
        return found

    def _flush(self, batch: frozenset[str]) -> None:
        ignored = git_ignored(self.root, batch)
        changed = frozenset(batch - ignored)
        if changed:
            log.info("%d changed file(s): %s", len(changed), ", ".join(sorted(changed)[:5]))
            self._on_change(changed)


def _stop_observer(observer: ObserverLike) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(5.0)
    except Exception:  # a half-started observer may fail to stop; nothing else to do
        log.debug("observer stop failed", exc_info=True)
