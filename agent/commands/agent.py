"""`selfheal agent run | start | stop | status`: the background agent of a project."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from agent.commands.common import config_from

if TYPE_CHECKING:
    from agent.config import Config
    from agent.daemon import AgentOptions


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="watch the project, re-run affected tests, receive telemetry and heal in the "
        "background",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    foreground = actions.add_parser("run", help="run the agent in the foreground (logs to stderr)")
    start = actions.add_parser("start", help="start the agent in the background")
    for sub in (foreground, start):
        _agent_options(sub)
        sub.set_defaults(func=run)
    start.add_argument(
        "--wait", type=float, default=20.0, metavar="S", help="seconds to wait for it to be up"
    )
    stop = actions.add_parser("stop", help="stop the agent (SIGTERM, then SIGKILL)")
    stop.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="grace before SIGKILL"
    )
    stop.set_defaults(func=run)
    status = actions.add_parser(
        "status", help="exit 0 running, 1 dead with a stale status file, 3 not running"
    )
    status.add_argument("--json", action="store_true", help="print the agent's status as JSON")
    status.set_defaults(func=run)


def _agent_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, metavar="N", help="control port (default: any)")
    parser.add_argument(
        "--otlp-port",
        type=int,
        metavar="N",
        help="OTLP/HTTP receiver port (default 4318; 0 = any free port, -1 = none)",
    )
    parser.add_argument("--debounce-ms", type=float, metavar="MS", help="watch debounce")
    parser.add_argument(
        "--window-s", type=float, metavar="S", help="telemetry window for detection"
    )
    parser.add_argument(
        "--no-watch", action="store_true", help="do not watch files (telemetry only)"
    )


def run(args: argparse.Namespace) -> int:
    action = args.action
    if action == "run":
        return _run(args)
    if action == "start":
        return _start(args)
    if action == "stop":
        return _stop(args)
    return _status(args)


def _options(args: argparse.Namespace) -> tuple[Config, AgentOptions]:
    from agent.daemon import options_from

    config = config_from(args)
    options = options_from(
        config,
        port=args.port,
        otlp_port=args.otlp_port,
        debounce_s=None if args.debounce_ms is None else args.debounce_ms / 1000.0,
        window_s=args.window_s,
        watch=False if args.no_watch else None,
    )
    return config, options


def _run(args: argparse.Namespace) -> int:
    from agent.daemon import run_agent

    config, options = _options(args)
    return run_agent(config, options, to_stderr=True)


def _start(args: argparse.Namespace) -> int:
    from agent import lifecycle as lc

    config, _ = _options(args)  # a bad setting fails here, in the user's terminal
    extra: list[str] = []
    for flag, value in (
        ("--port", args.port),
        ("--otlp-port", args.otlp_port),
        ("--debounce-ms", args.debounce_ms),
        ("--window-s", args.window_s),
    ):
        if value is not None:
            extra += [flag, str(value)]
    if args.no_watch:
        extra.append("--no-watch")
    argv = lc.agent_argv(config.root, extra)
    if args.store:
        argv[3:3] = ["--store", str(config.store)]
    paths = lc.Paths(config.selfheal_dir)
    status = lc.spawn_detached(paths, argv, timeout_s=args.wait)
    otlp = f"OTLP on 127.0.0.1:{status.otlp_port}" if status.otlp_port else "no OTLP receiver"
    print(f"selfheal agent started (pid {status.pid}, {otlp}); log: {status.log_file}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from agent import lifecycle as lc

    config = config_from(args)
    message, code = lc.stop(lc.Paths(config.selfheal_dir), timeout_s=args.timeout)
    print(f"selfheal agent: {message}")
    return code


def _status(args: argparse.Namespace) -> int:
    from agent import lifecycle as lc

    config = config_from(args)
    try:
        code, status = lc.check(lc.Paths(config.selfheal_dir))
    except lc.AgentError as exc:
        print(f"selfheal: error: {exc}", file=sys.stderr)
        return lc.UNKNOWN
    if code == lc.NOT_RUNNING:
        print("selfheal agent: not running")
        return code
    if status is None:
        print("selfheal agent: starting")
        return code
    if code == lc.DEAD_STALE:
        print(f"selfheal agent: dead (pid {status.pid} is gone; stale {lc.STATUS_FILE})")
        return code
    details = _details(status)
    if args.json:
        print(json.dumps({**status.to_json(), "details": details}, indent=2, sort_keys=True))
        return code
    age = (time.time_ns() - status.started_ns) / 1e9
    print(f"selfheal agent: running (pid {status.pid}, up {age:.0f}s, root {status.root})")
    if details:
        runs = details.get("test_runs", 0)
        print(
            f"  test runs: {runs}, anomalies: {details.get('anomalies_seen', 0)}, "
            f"spans ingested: {details.get('ingest', {}).get('spans', 0)}, "
            f"heal queue: {details.get('heal', {}).get('pending', 0)} pending"
        )
        last = details.get("last_run")
        if isinstance(last, dict):
            ago = (time.time_ns() - int(last.get("started_ns", 0))) / 1e9
            what = "all tests" if last.get("selected") is None else "affected tests"
            print(f"  last run: {what}, exit {last.get('exit_code')}, {ago:.0f}s ago")
        if details.get("last_heal"):
            print(f"  last heal: {details['last_heal']}")
    return code


def _details(status: Any) -> dict[str, Any]:
    from agent import lifecycle as lc
    from agent.control import STATUS_PATH, call

    try:
        code, body = call(status.port, lc.read_token(status), STATUS_PATH, timeout=3.0)
    except (OSError, lc.AgentError) as exc:
        print(f"  (control endpoint not answering: {exc})", file=sys.stderr)
        return {}
    return body if code == 200 and isinstance(body, dict) else {}
