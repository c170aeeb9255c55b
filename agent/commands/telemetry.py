"""`selfheal telemetry ingest PATH...`: play the telemetry sequence on files and summarise."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from agent.commands.common import conductor, config_from
from agent.errors import TelemetryError

if TYPE_CHECKING:
    from agent.phases.telemetry import TelemetryOutcome

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("telemetry", help="ingest telemetry files")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    ingest = actions.add_parser(
        "ingest",
        help="read OTLP JSON, JSON-lines logs and spool segments into the store",
        description="Read telemetry files or directories (OTLP JSON as the OpenTelemetry "
        "Collector's file exporter writes it, JSON-lines application logs, selfheal spool "
        "segments), aggregate per (service, operation, version) and store the metrics.",
    )
    ingest.add_argument("paths", nargs="*", metavar="PATH", help="file or directory")
    ingest.add_argument(
        "--sample", action="store_true", help="ingest the sample traces shipped with selfheal"
    )
    ingest.add_argument(
        "--keep-raw",
        action="store_true",
        help="store every event (default: metrics plus the slowest and failing exemplars)",
    )
    ingest.add_argument(
        "--top", type=int, default=10, metavar="N", help="operations to list (default 10)"
    )
    ingest.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.phases.telemetry import TelemetryRequest, ingest

    paths = [Path(p).resolve() for p in args.paths]
    if args.sample:
        paths.append(SAMPLES_DIR)
    if not paths:
        raise TelemetryError("telemetry ingest: give at least one PATH, or --sample")
    config = config_from(args)
    request = TelemetryRequest(sources=tuple(paths), run_kind="ingest", keep_raw=args.keep_raw)
    with conductor(config) as cond:
        outcome = ingest(cond, request)
    for line in summary_lines(outcome, config.store, args.top):
        print(line)
    return 0


def summary_lines(outcome: TelemetryOutcome, store: Path, top: int) -> list[str]:
    lines = [
        f"run {outcome.run_id}: {outcome.events} events from {len(outcome.sources)} "
        f"source(s) into {store}",
        f"  operations {len(outcome.metrics)}, stored events {outcome.stored_events}, "
        f"call edges {outcome.edges}, exception signatures {outcome.signatures}",
    ]
    for source, count in outcome.malformed.items():
        if count:
            lines.append(f"  malformed lines skipped: {count} in {source}")
    if not any(outcome.malformed.values()):
        lines.append("  malformed lines skipped: 0")
    ranked = sorted(outcome.metrics, key=lambda m: (-m.count, m.service, m.operation))
    for m in ranked[: max(top, 0)]:
        version = f"@{m.version}" if m.version else ""
        lines.append(
            f"  {m.service}{version} {m.operation}: n={m.count} p50={m.p50_ns / 1e6:.2f}ms "
            f"p95={m.p95_ns / 1e6:.2f}ms p99={m.p99_ns / 1e6:.2f}ms "
            f"errors={m.error_rate:.1%}"
        )
    return lines
