"""`selfheal detect FILE`: JSON out, one message per bad line, never a traceback."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main


def _csv(tmp_path: Path, extra: list[str]) -> Path:
    rng = random.Random(7)
    lines = ["timestamp,value"]
    for i in range(200):
        value = 50 + rng.gauss(0, 1) + (25 if i >= 150 else 0)
        lines.append(f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z,{value:.3f}")
    lines[101] = "2026-01-01T00:01:40Z,95"  # a spike at row 100
    lines[20:20] = extra
    path = tmp_path / "latency.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_anomalies_as_json_and_bad_lines_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(tmp_path, ["2026-01-01T00:00:19Z,n/a", "yesterday,3", "1,2,3"])
    assert main(["detect", str(path)]) == 0
    out, err = capsys.readouterr()
    found = json.loads(out)
    assert [(a["timestamp"], a["kind"]) for a in found] == [
        ("2026-01-01T00:01:40Z", "spike"),
        ("2026-01-01T00:02:30Z", "level_shift_up"),
    ]
    assert all(a["score"] >= 5 for a in found)
    assert err.splitlines() == [
        f"{path}:21: bad value 'n/a' (expected a number)",
        f"{path}:22: bad timestamp 'yesterday' (a number or ISO 8601)",
        f"{path}:23: expected 2 columns (timestamp,value), got 3",
    ]


def test_missing_and_binary_files_are_one_line_errors(tmp_path: Path) -> None:
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\x00\x01\x02garbage")
    for target, text in ((tmp_path / "none.csv", "cannot read"), (binary, "binary data")):
        proc = subprocess.run(
            [sys.executable, "-m", "agent.cli", "detect", str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 2
        assert text in proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
