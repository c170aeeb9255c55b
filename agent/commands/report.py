"""`selfheal report --html PATH | --md PATH | --json PATH`: the learning record as files."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.commands.common import config_from, open_store
from agent.errors import SelfHealError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write an HTML, Markdown or JSON report",
        description="Write the insights as one self-contained HTML page with charts (no "
        "network needed), as Markdown, or as JSON. Use '-' as PATH for standard output.",
    )
    parser.add_argument("--html", metavar="PATH", help="self-contained HTML page with charts")
    parser.add_argument("--md", metavar="PATH", help="Markdown")
    parser.add_argument("--json", metavar="PATH", help="JSON")
    parser.add_argument(
        "--track",
        action="store_true",
        help="first look for newly applied fixes and later runs (learning phase)",
    )
    parser.set_defaults(func=run)


def _write(target: str, body: str) -> None:
    if target == "-":
        print(body, end="")
        return
    path = Path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    except OSError as exc:
        raise SelfHealError(f"report: cannot write {path}: {exc.strerror or exc}") from None
    print(f"selfheal: wrote {path}")


def run(args: argparse.Namespace) -> int:
    import json
    import time

    from agent.commands.insights import require_store, track
    from agent.reporting import html, text
    from agent.reporting.data import collect

    if not (args.html or args.md or args.json):
        raise SelfHealError("report: give at least one of --html PATH, --md PATH, --json PATH")
    config = config_from(args)
    require_store(config)
    if args.track:
        track(config)
    with open_store(config) as store:
        data = collect(store, config.root.name, time.time_ns(), config.root)
    if args.html:
        _write(args.html, html.render(data))
    if args.md:
        _write(args.md, text.markdown(data))
    if args.json:
        _write(args.json, json.dumps(data.to_json(), indent=2, sort_keys=True) + "\n")
    return 0
