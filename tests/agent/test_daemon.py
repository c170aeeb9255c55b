"""The agent as a user meets it: real processes, a real project, real kills."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent import spool
from agent.otlp import encode_protobuf
from agent.records import EventSource, SpanStatus, TelemetryEvent
from conftest import commit_files, git

PROJECT = {
    "pyproject.toml": '[project]\nname = "shop"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "shop/__init__.py": "",
    "shop/prices.py": "def total(items):\n    return sum(items)\n\n\n"
    "def discount(price, percent):\n    return price * (100 - percent) / 100\n",
    "tests/test_prices.py": "from shop.prices import discount, total\n\n\n"
    "def test_total():\n    assert total([1, 2, 3]) == 6\n\n\n"
    "def test_discount():\n    assert discount(200, 25) == 150\n",
}


def selfheal(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(what: Callable[[], object], timeout: float, message: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # not migrated yet
    finally:
        conn.close()


@pytest.fixture
def project(make_repo: Callable[..., Path]) -> Iterator[Path]:
    root = make_repo(PROJECT, name="shop")
    yield root
    # Whatever a failing test left running is stopped through the product's own command.
    selfheal(root, "agent", "stop", "--timeout", "5")


@pytest.mark.slow
def test_start_edit_status_stop_as_a_new_user(project: Path) -> None:
    # A colleague's commit that breaks `total`, on a branch to check out later.
    git(project, "checkout", "-q", "-b", "colleague")
    prices = project / "shop/prices.py"
    commit_files(
        project,
        {"shop/prices.py": prices.read_text().replace("sum(items)", "sum(items[1:])")},
        "total: skip the header row",
    )
    git(project, "checkout", "-q", "main")

    started = selfheal(project, "agent", "start", "--otlp-port", "0")
    assert started.returncode == 0, started.stderr
    assert "selfheal agent started" in started.stdout
    again = selfheal(project, "agent", "start", "--otlp-port", "0")
    assert again.returncode == 2
    assert "already running" in again.stderr and "Traceback" not in again.stderr
    status_file = json.loads((project / ".selfheal/agent.json").read_text())
    assert {"pid", "port", "started_ns", "token_file"} <= set(status_file)
    db = project / ".selfheal/selfheal.db"
    wait_for(
        lambda: query(db, "SELECT 1 FROM runs WHERE kind = 'test' AND status != 'running'"),
        60,
        "the baseline run the agent starts when the store has none",
    )

    # Edit a function so a test breaks, save: the affected tests run, the anomaly appears.
    saved = time.time_ns()
    prices.write_text(prices.read_text().replace("(100 - percent)", "(100 + percent)"))
    payload = _anomaly_since(db, saved)
    assert payload["kind"] == "error" and "test_discount" in str(payload["subject"])
    log = (project / ".selfheal/agent.log").read_text()
    assert "1 changed file(s): shop/prices.py" in log
    assert "running 2 test(s) for 1 changed file(s)" in log  # from the coverage map
    # The saved edit is not committed: it is healed all the same, relative to the working tree.
    patches = project / ".selfheal/patches"
    first = wait_for(
        lambda: [
            p
            for p in patches.glob("*.diff")
            if "+    return price * (100 - percent)" in p.read_text()
        ],
        240,
        "a validated patch for the uncommitted edit",
    )
    assert isinstance(first, list)

    # Undo it, then check out the colleague's commit: healed into a validated patch and a
    # proposal branch, while the working tree stays as the developer left it.
    git(project, "checkout", "-q", "--", "shop/prices.py")
    time.sleep(1.0)
    saved = time.time_ns()
    git(project, "checkout", "-q", "colleague")
    payload = _anomaly_since(db, saved)
    assert "test_total" in str(payload["subject"])
    wait_for(
        lambda: [p for p in patches.glob("*.diff") if p not in first], 240, "a validated patch"
    )
    branches = wait_for(
        lambda: [
            b
            for b in git(
                project, "branch", "--list", "--format=%(refname:short)", "selfheal/*"
            ).split()
            if "test_total" in b or "total" in b
        ],
        60,
        "a proposal branch",
    )
    assert isinstance(branches, list) and branches[0].startswith("selfheal/")
    assert git(project, "status", "--porcelain").strip() == ""
    assert git(project, "branch", "--show-current").strip() == "colleague"

    status = selfheal(project, "agent", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "running" in status.stdout
    stopped = selfheal(project, "agent", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    after = selfheal(project, "agent", "status")
    assert after.returncode == 3 and "not running" in after.stdout


def _anomaly_since(db: Path, since_ns: int) -> dict[str, object]:
    rows = wait_for(
        lambda: query(
            db,
            "SELECT payload FROM records WHERE kind = 'Anomaly' "
            f"AND created_ns >= {since_ns} ORDER BY created_ns",
        ),
        60,
        "an anomaly",
    )
    assert isinstance(rows, list)
    payload: dict[str, object] = json.loads(rows[0][0])
    return payload


@pytest.mark.slow
def test_killed_agent_leaves_a_stale_status(project: Path) -> None:
    started = selfheal(project, "agent", "start", "--otlp-port", "-1", "--no-watch")
    assert started.returncode == 0, started.stderr
    pid = json.loads((project / ".selfheal/agent.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: selfheal(project, "agent", "status").returncode == 1, 10, "status 1")
    restarted = selfheal(project, "agent", "start", "--otlp-port", "-1", "--no-watch")
    assert restarted.returncode == 0, restarted.stderr
    assert selfheal(project, "agent", "status").returncode == 0
    stopped = selfheal(project, "agent", "stop")
    assert stopped.returncode == 0
    (project / ".selfheal/agent.json").write_text("{garbage")
    unknown = selfheal(project, "agent", "status")
    assert unknown.returncode == 4
    assert unknown.stderr.startswith("selfheal: error: ") and "agent.json" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def _events(first: int, count: int, service: str) -> list[TelemetryEvent]:
    return [
        TelemetryEvent(
            source=EventSource.SPAN,
            service=service,
            operation=f"GET /item/{i % 13}",
            start_ns=1_700_000_000_000_000_000 + i,
            duration_ns=1_000_000 + i,
            status=SpanStatus.OK,
            trace_id=f"{i:032x}",
            span_id=f"{i:016x}",
        )
        for i in range(first, first + count)
    ]


class Poster:
    """Posts OTLP batches to the receiver until told to stop; remembers what got a 200."""

    def __init__(self, status_file: Path, first: int) -> None:
        self.status_file = status_file
        self.next = first
        self.acked: set[str] = set()
        self.sent: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="test-poster")

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                port = json.loads(self.status_file.read_text())["otlp_port"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
                continue
            batch = _events(self.next, 200, "poster")
            self.next += 200
            self.sent.update(e.span_id for e in batch)
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/traces",
                data=encode_protobuf(batch),
                headers={"Content-Type": "application/x-protobuf"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status == 200:
                        self.acked.update(e.span_id for e in batch)
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.05)  # the agent is down or busy: unacknowledged, may be lost


SPAN_COUNT = "SELECT count(*) FROM spans WHERE source = 'span'"


def _span_count(db: Path) -> int:
    rows = query(db, SPAN_COUNT)
    return int(str(rows[0][0])) if rows else 0


def _stored_ids(db: Path) -> set[str]:
    # Received spans only: the agent's own beats are stored as spans too (source 'beat').
    return {str(r[0]) for r in query(db, "SELECT span_id FROM spans WHERE source = 'span'")}


AGENT_RUN = ("agent", "run", "--otlp-port", "0", "--no-watch", "--window-s", "3600")


def _run_agent(root: Path) -> subprocess.Popen[bytes]:
    # A long window: no detection play competes with the ingest this test is about.
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", *AGENT_RUN],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_kill_9_while_ingesting_200k_spans_loses_and_repeats_nothing(project: Path) -> None:
    selfheal_dir = project / ".selfheal"
    spool_dir = selfheal_dir / "spool"
    with spool.SpoolWriter(spool_dir) as writer:
        for first in range(0, 200_000, 20_000):
            writer.write(_events(first, 20_000, "spooled"))
    db = selfheal_dir / "selfheal.db"
    status_file = selfheal_dir / "agent.json"
    poster = Poster(status_file, first=10_000_000)
    agent = _run_agent(project)
    try:
        poster.thread.start()
        wait_for(
            lambda: _span_count(db) >= 30_000,
            120,
            "ingest to be well under way",
        )
        wait_for(lambda: len(poster.acked) >= 1_000, 60, "the receiver to acknowledge spans")
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        in_store = _span_count(db)
        assert 0 < in_store < 200_000, "killed mid-ingest"
        acked_before_kill = set(poster.acked)
        print(f"killed at {in_store} stored spans, {len(acked_before_kill)} acknowledged")
        agent = _run_agent(project)
        wait_for(lambda: len(poster.acked) > len(acked_before_kill), 60, "posting to resume")
        poster.stop.set()
        poster.thread.join(30)
        spooled = {f"{i:016x}" for i in range(200_000)}
        must = spooled | poster.acked
        wait_for(lambda: must <= _stored_ids(db), 120, "the restarted agent to ingest the rest")
        time.sleep(1.5)  # one more ingest pass: anything extra would be a duplicate
    finally:
        poster.stop.set()
        if poster.thread.is_alive():
            poster.thread.join(30)
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
    rows = query(
        db,
        "SELECT span_id, count(*) FROM spans WHERE source = 'span' GROUP BY span_id"
        " HAVING count(*) > 1",
    )
    assert rows == [], f"{len(rows)} spans stored twice"
    stored = _stored_ids(db)
    assert must <= stored  # every spooled and every acknowledged span survived the kill
    assert stored <= spooled | poster.sent  # and nothing appeared from nowhere
