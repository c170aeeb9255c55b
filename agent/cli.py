"""The `selfheal` command: argparse subcommands over one exception hierarchy."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Protocol

from agent import __version__
from agent.commands import agent as agent_command
from agent.commands import (
    apply,
    demo,
    detect,
    heal,
    insights,
    report,
    sequences,
    telemetry,
    validate,
)
from agent.errors import SelfHealError


class Command(Protocol):
    """What a module under agent/commands/ provides (keep its heavy imports inside `run`)."""

    def add_parser(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Add the command's parser; it must set `func=run` with `set_defaults`."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; raise SelfHealError for anything the user can fix."""


# Every subcommand in help order: a new command adds its import above and one entry here.
COMMANDS: tuple[Command, ...] = (
    sequences,
    telemetry,
    agent_command,
    heal,
    apply,
    insights,
    report,
    demo,
    detect,
    validate,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfheal",
        description="Detect regressions in tests and telemetry, diagnose them, write and "
        "validate patches, and deliver them.",
    )
    parser.add_argument("--version", action="version", version=f"selfheal {__version__}")
    parser.add_argument(
        "--root",
        metavar="DIR",
        help="project root (default: nearest directory with pyproject.toml or .git)",
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="store file (default: [tool.selfheal] store, $SELFHEAL_STORE, .selfheal/selfheal.db)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors are one line per problem on stderr and a non-zero code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    try:
        code: int = args.func(args)
    except SelfHealError as exc:
        report_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("selfheal: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`selfheal ... | head`): not a bug. Point stdout at devnull
        # so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


def report_error(exc: SelfHealError) -> None:
    # A SequenceError carries one problem per line; each gets the same prefix.
    lines = str(exc).splitlines() or [type(exc).__name__]
    for line in lines:
        print(f"selfheal: error: {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
