"""The workspace watcher: real watchdog observers on real git repositories."""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import watcher as w
from conftest import commit_files, git


class Batches:
    """Collects the batches the watcher reports, with the time each arrived."""

    def __init__(self) -> None:
        self.items: list[tuple[float, frozenset[str]]] = []
        self._event = threading.Event()

    def __call__(self, batch: frozenset[str]) -> None:
        self.items.append((time.monotonic(), batch))
        self._event.set()

    def wait(self, count: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.items) < count and time.monotonic() < deadline:
            self._event.wait(0.05)
            self._event.clear()
        assert len(self.items) >= count, f"expected {count} batch(es), got {self.items}"

    @property
    def all_paths(self) -> set[str]:
        return {p for _, batch in self.items for p in batch}


def _project(make_repo: Callable[..., Path]) -> Path:
    return make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/calc.py": "def add(a, b):\n    return a + b\n",
            "tests/test_calc.py": "from pkg.calc import add\n\ndef test_add():\n"
            "    assert add(1, 2) == 3\n",
            ".gitignore": "generated/\n*.tmp.py\n",
        }
    )


def test_relevance_rules() -> None:
    assert w.is_relevant("pkg/calc.py")
    assert w.is_relevant("tests/conftest.py")
    assert w.is_relevant("pyproject.toml")
    assert not w.is_relevant("pkg/__pycache__/calc.cpython-311.pyc")
    assert not w.is_relevant(".git/index")
    assert not w.is_relevant(".venv/lib/site.py")
    assert not w.is_relevant("pkg/data.json")
    assert not w.is_relevant("pkg/.calc.py.swp")
    assert not w.is_relevant("x.egg-info/foo.py")
    assert w.needs_full_run(["tests/conftest.py"])
    assert not w.needs_full_run(["pkg/calc.py"])


def test_git_ignored_is_one_batch(make_repo: Callable[..., Path]) -> None:
    repo = _project(make_repo)
    got = w.git_ignored(repo, ["generated/a.py", "pkg/calc.py", "pkg/x.tmp.py"])
    assert got == {"generated/a.py", "pkg/x.tmp.py"}
    assert w.git_ignored(repo, []) == set()


def test_git_ignored_outside_a_repository(tmp_path: Path) -> None:
    assert w.git_ignored(tmp_path, ["a.py"]) == set()


def test_debouncer_merges_a_burst_and_waits_for_quiet() -> None:
    got = Batches()
    deb = w.Debouncer(got, debounce_s=0.2, max_delay_s=5.0)
    deb.start()
    try:
        start = time.monotonic()
        for i in range(10):
            last = time.monotonic()
            deb.add([f"f{i}.py"])
            time.sleep(0.05)  # each event comes before the quiet period ends
        got.wait()
        time.sleep(0.3)
    finally:
        deb.stop()
    assert len(got.items) == 1
    arrived, batch = got.items[0]
    assert batch == frozenset(f"f{i}.py" for i in range(10))
    assert arrived - last >= 0.2 - 0.01  # trailing edge: the quiet period after the last event
    assert arrived - start < 2.0


def test_debouncer_max_delay_bounds_a_stream_that_never_settles() -> None:
    got = Batches()
    deb = w.Debouncer(got, debounce_s=0.3, max_delay_s=0.6)
    deb.start()
    try:
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            deb.add(["a.py"])
            time.sleep(0.05)
        got.wait(2)
    finally:
        deb.stop()
    assert len(got.items) >= 2  # it ran while the stream went on, not only after


def test_debouncer_separate_bursts_are_separate_batches() -> None:
    got = Batches()
    deb = w.Debouncer(got, debounce_s=0.1)
    deb.start()
    try:
        deb.add(["a.py"])
        got.wait(1)
        deb.add(["b.py"])
        got.wait(2)
    finally:
        deb.stop()
    assert [b for _, b in got.items] == [frozenset({"a.py"}), frozenset({"b.py"})]


def test_debouncer_survives_a_failing_callback(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[frozenset[str]] = []

    def flaky(batch: frozenset[str]) -> None:
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("boom")

    deb = w.Debouncer(flaky, debounce_s=0.05)
    deb.start()
    try:
        deb.add(["a.py"])
        deadline = time.monotonic() + 5
        while len(calls) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        deb.add(["b.py"])
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        deb.stop()
    assert len(calls) == 2
    assert "change callback failed" in caplog.text


def test_watcher_reports_a_saved_source_file(make_repo: Callable[..., Path]) -> None:
    repo = _project(make_repo)
    got = Batches()
    with w.WorkspaceWatcher(repo, got, debounce_s=0.1) as watcher:
        assert not watcher.polling
        (repo / "pkg/calc.py").write_text("def add(a, b):\n    return a - b\n")
        got.wait()
    assert got.all_paths == {"pkg/calc.py"}


def test_watcher_ignores_git_venv_caches_and_gitignored(make_repo: Callable[..., Path]) -> None:
    repo = _project(make_repo)
    venv = repo / "env"
    (venv / "lib").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr\n")
    got = Batches()
    with w.WorkspaceWatcher(repo, got, debounce_s=0.1):
        (repo / ".selfheal").mkdir()
        (repo / ".selfheal" / "x.py").write_text("1\n")
        (repo / "pkg" / "__pycache__").mkdir()
        (repo / "pkg" / "__pycache__" / "calc.py").write_text("1\n")
        (venv / "lib" / "site.py").write_text("1\n")
        (repo / "generated").mkdir()
        (repo / "generated" / "out.py").write_text("1\n")
        (repo / "pkg" / "scratch.tmp.py").write_text("1\n")
        (repo / "pkg" / "notes.txt").write_text("1\n")
        git(repo, "commit", "-q", "--allow-empty", "-m", "touch .git")
        (repo / "tests" / "test_new.py").write_text("def test_x():\n    pass\n")  # the only one
        got.wait()
        time.sleep(0.4)
    assert got.all_paths == {"tests/test_new.py"}


def test_watcher_sees_new_top_level_directories(make_repo: Callable[..., Path]) -> None:
    repo = _project(make_repo)
    got = Batches()
    with w.WorkspaceWatcher(repo, got, debounce_s=0.1):
        (repo / "lib2").mkdir()
        (repo / "lib2" / "early.py").write_text("X = 0\n")  # likely before the watch exists
        time.sleep(0.3)  # the new directory gets its watch from the root's event
        (repo / "lib2" / "mod.py").write_text("X = 1\n")
        got.wait()
        deadline = time.monotonic() + 5
        while {"lib2/mod.py", "lib2/early.py"} - got.all_paths and time.monotonic() < deadline:
            time.sleep(0.05)
    assert {"lib2/mod.py", "lib2/early.py"} <= got.all_paths


def test_branch_checkout_of_hundreds_of_files_is_one_batch(
    make_repo: Callable[..., Path],
) -> None:
    repo = _project(make_repo)
    git(repo, "checkout", "-q", "-b", "big")
    commit_files(repo, {f"pkg/m{i:03d}.py": f"V = {i}\n" for i in range(300)}, "many")
    git(repo, "checkout", "-q", "main")
    got = Batches()
    with w.WorkspaceWatcher(repo, got, debounce_s=0.3):
        git(repo, "checkout", "-q", "big")
        got.wait()
        time.sleep(0.8)  # any straggler batch would arrive in this window
    assert len(got.items) == 1
    assert len(got.all_paths) == 300


def test_inotify_limit_falls_back_to_polling(
    make_repo: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    repo = _project(make_repo)

    class ExhaustedObserver:
        """Fails like watchdog does when fs.inotify.max_user_watches is used up."""

        name = ""

        def schedule(self, event_handler: object, path: str, *, recursive: bool = False) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

        def start(self) -> None:
            raise AssertionError("never started")

        def stop(self) -> None:
            pass

        def join(self, timeout: float | None = None) -> None:
            pass

        def is_alive(self) -> bool:
            return False

    got = Batches()
    caplog.set_level(logging.WARNING, "selfheal")
    with w.WorkspaceWatcher(
        repo, got, debounce_s=0.1, observer_factory=ExhaustedObserver
    ) as watcher:
        assert watcher.polling
        time.sleep(0.2)
        (repo / "pkg/calc.py").write_text("def add(a, b):\n    return b + a + 0\n")
        got.wait(timeout=10)
    assert got.all_paths == {"pkg/calc.py"}
    assert "falling back to polling" in caplog.text


def test_other_os_errors_are_not_swallowed(make_repo: Callable[..., Path]) -> None:
    repo = _project(make_repo)

    class Broken:
        name = ""

        def schedule(self, event_handler: object, path: str, *, recursive: bool = False) -> None:
            raise OSError(errno.EACCES, "permission denied")

        def start(self) -> None: ...
        def stop(self) -> None: ...
        def join(self, timeout: float | None = None) -> None: ...
        def is_alive(self) -> bool:
            return False

    watcher = w.WorkspaceWatcher(repo, Batches(), observer_factory=Broken)
    with pytest.raises(OSError, match="permission denied"):
        watcher.start()
    watcher.stop()
