"""`selfheal detect FILE`: anomalies in a metric series (CSV `timestamp,value`) as JSON."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.errors import TelemetryError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="find spikes, dips and level shifts in a metric series (CSV timestamp,value)",
        description="Read a CSV of timestamp,value rows (a header row is optional; timestamps "
        "are numbers or ISO 8601) and print the anomalies as JSON: timestamp, score, kind. "
        "Bad lines are reported on stderr, one line each, and skipped.",
    )
    parser.add_argument("file", metavar="FILE", help="CSV file, or - for standard input")
    parser.add_argument("--window", type=int, default=60, help="baseline values (default 60)")
    parser.add_argument(
        "--shift-window", type=int, default=8, help="values that make a level shift (default 8)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=5.0,
        help="robust deviations that count as anomalous (default 5)",
    )
    parser.add_argument(
        "--alpha", type=float, default=0.001, help="rank-test level for shifts (default 0.001)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.streaming import StreamingDetector, detect_series

    try:
        detector = StreamingDetector(args.window, args.shift_window, args.threshold, args.alpha)
    except ValueError as exc:
        raise TelemetryError(f"selfheal detect: {exc}") from None
    name, text = _read(args.file)
    points, problems = parse_series(text, name)
    for problem in problems:
        print(problem, file=sys.stderr)
    found = detect_series(points, detector)
    out = [
        {
            "timestamp": _json_timestamp(d.timestamp),
            "score": d.score,
            "kind": d.kind,
            "value": d.value,
            **({"p_value": d.p_value} if d.p_value is not None else {}),
        }
        for d in found
    ]
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _read(file: str) -> tuple[str, str]:
    if file == "-":
        return "<stdin>", sys.stdin.read()
    path = Path(file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TelemetryError(f"{file}: cannot read: {exc.strerror or exc}") from None
    if b"\0" in data[:4096]:
        raise TelemetryError(f"{file}: binary data, not a CSV of timestamp,value rows")
    return file, data.decode("utf-8", errors="replace")


def parse_series(text: str, name: str) -> tuple[list[Any], list[str]]:
    """Points in file order and one message per bad line (`name:line: why`)."""
    from agent.streaming import Point, finite

    points: list[Point] = []
    problems: list[str] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if number == 1 and _is_header(row):
            continue
        where = f"{name}:{number}"
        if len(row) != 2:
            problems.append(f"{where}: expected 2 columns (timestamp,value), got {len(row)}")
            continue
        stamp, raw = row[0].strip(), row[1].strip()
        if not _valid_timestamp(stamp):
            problems.append(f"{where}: bad timestamp {stamp[:40]!r} (a number or ISO 8601)")
            continue
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{where}: bad value {raw[:40]!r} (expected a number)")
            continue
        if not finite(value):
            problems.append(f"{where}: value {raw!r} is not finite")
            continue
        points.append(Point(stamp, value))
    return points, problems


def _is_header(row: list[str]) -> bool:
    try:
        float(row[1] if len(row) > 1 else "")
    except ValueError:
        return not _valid_timestamp(row[0].strip())
    return False


def _valid_timestamp(text: str) -> bool:
    if not text:
        return False
    try:
        float(text)
        return True
    except ValueError:
        pass
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _json_timestamp(stamp: str) -> str | int | float:
    try:
        number = float(stamp)
    except ValueError:
        return stamp
    return int(number) if number.is_integer() and "." not in stamp else number
