"""`selfheal validate PATCH_FILE [--test NODEID ...]`: run the validation gate on any diff."""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from agent.commands.common import conductor, config_from
from agent.errors import PatchError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="prove a unified diff in an isolated worktree (tests, coverage, timing, docs)",
        description="Hold a unified diff to the patch safety policy, apply it in a fresh git "
        "worktree of the base commit and run the validation gate: the given tests first, "
        "`--repeats` times in a row, then the affected tests (or the full suite), coverage "
        "against the base commit, doctests and documentation references. Your working tree, "
        "index, stash and branches are not touched. Exit 0 when the patch passes, 1 when not.",
    )
    parser.add_argument("patch", metavar="PATCH_FILE", help="unified diff ('-' for stdin)")
    parser.add_argument(
        "--test",
        action="append",
        default=[],
        metavar="NODEID",
        help="a test the patch must make pass (repeatable); run first, --repeats times",
    )
    parser.add_argument("--base", metavar="COMMIT", default="HEAD", help="base commit (HEAD)")
    parser.add_argument(
        "--selection",
        choices=("affected", "full"),
        default=None,
        help="affected tests only, or the full suite (default: [tool.selfheal] setting)",
    )
    parser.add_argument("--repeats", type=int, default=None, metavar="N", help="passes in a row")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="budget")
    parser.add_argument(
        "--no-coverage", action="store_true", help="skip the coverage comparison (faster)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.phases.validation import ValidationRequest, validate
    from agent.records import FixType, Patch

    diff = _read_patch(args.patch)
    config = config_from(args)
    digest = hashlib.sha256(diff.encode("utf-8", errors="surrogatepass")).hexdigest()[:12]
    patch = Patch(
        id=f"manual-{digest}",
        anomaly_id="",
        diagnosis_id="",
        strategy="manual",
        fix_type=FixType.CODE,
        diff=diff,
        base_commit=args.base,
        created_ns=time.time_ns(),
    )
    request = ValidationRequest(
        patch=patch,
        selection=args.selection or config.validation_selection,
        repeats=args.repeats or config.validation_repeats,
        timeout_s=args.timeout or config.validation_timeout_s,
        tests=tuple(args.test),
        coverage=not args.no_coverage,
    )
    with conductor(config) as cond:
        result = validate(cond, request)
    for check in result.checks:
        mark = "ok  " if check.passed else "FAIL"
        print(f"{mark} {check.name}: {check.reason}")
    verdict = "passed" if result.passed else "failed"
    print(f"validation {verdict}: {patch.id} ({result.duration_ns / 1e9:.1f}s, {result.id})")
    return 0 if result.passed else 1


def _read_patch(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    path = Path(name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PatchError(f"{name}: cannot read the patch file: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"{name}: not UTF-8 text (byte {exc.start})"
        raise PatchError(f"{where}: binary patches are refused") from None
