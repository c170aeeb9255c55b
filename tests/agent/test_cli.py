"""The `selfheal` command as a real subprocess: clear one-line errors, never a traceback."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent import __version__
from agent.cli import main
from agent.store import SCHEMA_VERSION, Store
from sequences import SEQUENCE_DIR

SCRIPT = Path(sys.executable).parent / "selfheal"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "agent.cli"]


def selfheal(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFHEAL_")}
    return subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("selfheal: error: ")
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def broken_sequences(tmp_path: Path, edit: str) -> Path:
    """A copy of the bundled telemetry sequence with one problem in it."""
    directory = tmp_path / "seqs"
    directory.mkdir()
    index = {"version": 1, "sequences": ["telemetry.parse.json"], "pipeline": ["telemetry.parse"]}
    (directory / "index.json").write_text(json.dumps(index), encoding="utf-8")
    target = directory / "telemetry.parse.json"
    text = (SEQUENCE_DIR / "telemetry.parse.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    beats = doc["movements"][0]["beats"]
    if edit == "invalid-json":
        target.write_text(text[: len(text) // 2], encoding="utf-8")
        return directory
    if edit == "unknown-handler":
        beats[2]["handler"] = "extractTelemetryEventz"
    elif edit == "duplicate-beat":
        beats[4]["beat"] = 4
    target.write_text(json.dumps(doc), encoding="utf-8")
    return directory


def test_version_and_help(tmp_path: Path) -> None:
    proc = selfheal(tmp_path, "--version")
    assert (proc.returncode, proc.stdout.strip()) == (0, f"selfheal {__version__}")
    proc = selfheal(tmp_path, "--help")
    assert proc.returncode == 0 and "sequences" in proc.stdout and "telemetry" in proc.stdout


def test_sequences_check_and_show(tmp_path: Path) -> None:
    proc = selfheal(tmp_path, "sequences", "check")
    assert proc.returncode == 0, proc.stderr
    assert "telemetry.parse: 7 beats (telemetry.parse.json)" in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("ok: ")
    proc = selfheal(tmp_path, "sequences", "show", "telemetry.parse")
    assert proc.returncode == 0
    assert [ln.split()[1] for ln in proc.stdout.splitlines()[1:]] == [
        "parseTelemetryRequested",
        "loadLogFiles",
        "extractTelemetryEvents",
        "normalizeTelemetryData",
        "aggregateTelemetryMetrics",
        "storeTelemetryDatabase",
        "parseTelemetryCompleted",
    ]
    assert_one_line_error(selfheal(tmp_path, "sequences", "show", "no.such"), "no sequence")


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ("invalid-json", "telemetry.parse.json: invalid JSON"),
        ("unknown-handler", "beat 3 (extractTelemetryEventz): unknown handler"),
        ("duplicate-beat", "beat 4 (aggregateTelemetryMetrics): duplicate beat number"),
    ],
)
def test_bad_sequence_file_is_one_clear_line(tmp_path: Path, edit: str, needle: str) -> None:
    directory = broken_sequences(tmp_path, edit)
    proc = selfheal(tmp_path, "sequences", "check", str(directory))
    assert_one_line_error(proc, str(directory / "telemetry.parse.json"), needle)


def test_telemetry_ingest_of_the_shipped_sample(tmp_path: Path) -> None:
    proc = selfheal(tmp_path, "telemetry", "ingest", "--sample")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    store = tmp_path / ".selfheal" / "selfheal.db"
    assert lines[0] == f"run 1: 405 events from 2 source(s) into {store}"
    assert "malformed lines skipped: 0" in proc.stdout
    assert "shop@1.4.0 GET /checkout: n=20" in proc.stdout
    with Store.open(store) as opened:
        assert len(opened.metrics(1)) == 9


def test_telemetry_ingest_reports_malformed_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        '{"timestamp": "2024-05-01T10:00:00Z", "level": "error", "message": "x"}\n{oops\n',
        encoding="utf-8",
    )
    proc = selfheal(tmp_path, "telemetry", "ingest", str(log))
    assert proc.returncode == 0, proc.stderr
    assert f"malformed lines skipped: 1 in {log}" in proc.stdout
    assert "app log root: n=1" in proc.stdout


def test_binary_garbage_telemetry_file(tmp_path: Path) -> None:
    garbage = tmp_path / "core.dump"
    garbage.write_bytes(os.urandom(4096) + b"\x00")
    proc = selfheal(tmp_path, "telemetry", "ingest", str(garbage))
    assert_one_line_error(proc, str(garbage), "not a telemetry file (binary data")


def test_missing_telemetry_path_and_no_path(tmp_path: Path) -> None:
    proc = selfheal(tmp_path, "telemetry", "ingest", "absent.jsonl")
    assert_one_line_error(proc, "absent.jsonl: no such file or directory")
    assert_one_line_error(selfheal(tmp_path, "telemetry", "ingest"), "give at least one PATH")


def test_store_that_is_not_a_database(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    store.write_bytes(b"SQLite format 2\x00 but not really" * 64)
    proc = selfheal(tmp_path, "--store", str(store), "telemetry", "ingest", "--sample")
    assert_one_line_error(proc, str(store), "not a usable selfheal store")
    assert store.read_bytes().startswith(b"SQLite format 2")  # left as it was
    assert not list(tmp_path.glob("store.db.corrupt-*"))


def test_store_from_a_newer_version(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    Store.open(store).close()
    conn = sqlite3.connect(store)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    proc = selfheal(tmp_path, "--store", str(store), "telemetry", "ingest", "--sample")
    assert_one_line_error(
        proc, str(store), "schema version 99", f"version {SCHEMA_VERSION} at most"
    )


def test_main_returns_codes_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--version"]) == 0
    assert main(["sequences", "check", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err == f"selfheal: error: {tmp_path / 'nowhere'}: not a directory\n"
    assert main(["no-such-command"]) == 2
