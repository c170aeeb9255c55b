"""`selfheal sequences check [DIR]` and `selfheal sequences show ID`."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.commands.common import config_from
from agent.errors import SequenceError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("sequences", help="check and show the pipeline's sequences")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    check = actions.add_parser(
        "check",
        help="validate sequence files (schema, handlers, beat numbers, kinds)",
        description="Validate the bundled sequences, or DIR: a full set (with index.json) or a "
        "user overlay (files that replace or add to the bundled ones).",
    )
    check.add_argument("directory", nargs="?", metavar="DIR", help="directory to check")
    check.set_defaults(func=run)
    show = actions.add_parser("show", help="print the beats of one sequence")
    show.add_argument("sequence_id", metavar="ID", help="sequence id, e.g. telemetry.parse")
    show.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.conductor import check_directory, describe

    config = config_from(args)
    directory: Path | None = None
    overlay = config.sequences
    if getattr(args, "directory", None):
        chosen = Path(args.directory).resolve()
        if not chosen.is_dir():
            raise SequenceError(f"{chosen}: not a directory")
        # A directory with its own index is a complete set; otherwise it overlays ours.
        directory, overlay = (chosen, None) if (chosen / "index.json").is_file() else (None, chosen)
    # The full check, also for `show`: every phase and every entry-point handler is loaded.
    seqs = {s.id: s for s in check_directory(directory, overlay=overlay)}
    if args.action == "show":
        seq = seqs.get(args.sequence_id)
        if seq is None:
            raise SequenceError(f"no sequence {args.sequence_id!r} (known: {', '.join(seqs)})")
        print(f"{seq.id}: {seq.name} ({seq.file})")
        for beat in seq.beats:
            policy = beat.on_error.policy
            if policy == "retry":
                policy = f"retry {beat.on_error.attempts}"
            print(
                f"  {beat.number:>2}  {beat.handler.name:<30} {beat.handler.kind.value:<10} "
                f"{beat.timing_s:>6g}s  {policy:<8} {beat.event}"
            )
        return 0
    for line in describe(seqs.values()):
        print(line)
    beats = sum(len(s.beats) for s in seqs.values())
    print(f"ok: {len(seqs)} sequences, {beats} beats, every handler registered")
    return 0
