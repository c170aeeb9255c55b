"""`selfheal apply ID`: put a proposed patch into the developer's checkout, refusing over local
changes to the files it touches."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from agent.commands.common import config_from, open_store
from agent.errors import PatchError, SelfHealError

if TYPE_CHECKING:
    from agent.store import Store


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "apply",
        help="apply a proposed patch to your working tree",
        description="Apply a stored patch (by patch id, id prefix or proposal branch) to the "
        "working tree. Refuses when a file it touches has uncommitted changes; nothing is "
        "committed, so review with `git diff` and commit as usual.",
    )
    parser.add_argument(
        "id", metavar="ID", help="patch id or unique prefix, or selfheal/... branch"
    )
    parser.add_argument("--check", action="store_true", help="only check that it would apply")
    parser.set_defaults(func=run)


def _resolve(store: Store, ident: str) -> list[str]:
    """Patch ids matching a proposal branch (exactly), or an id or unique id prefix."""
    from agent.records import Deployment

    if ident.startswith("selfheal/"):
        found = {d.patch_id for d in store.find(Deployment) if d.branch == ident}
        if found:
            return sorted(found)[:1]  # one branch, one change: any of its patches will do
        ident = ident.rsplit("-", 1)[-1]  # branch names end in the patch id's short form
        pattern = "%" + _escape(ident) + "%"
    else:
        pattern = _escape(ident) + "%"
    rows = store.conn.execute(
        "SELECT id FROM records WHERE kind = 'Patch' AND id LIKE ? ESCAPE '\\' LIMIT 5",
        (pattern,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def touched_files(diff: str) -> list[str]:
    """Every path a diff reads or writes (both sides of renames)."""
    from unidiff.patch import PatchSet

    paths: list[str] = []
    for pfile in PatchSet(diff):
        for name in (pfile.source_file, pfile.target_file):
            clean = name.split("/", 1)[1] if name[:2] in ("a/", "b/") else name
            if name != "/dev/null" and clean not in paths:
                paths.append(clean)
    return paths


def run(args: argparse.Namespace) -> int:
    from agent import git
    from agent.commands.insights import require_store
    from agent.records import Patch

    config = config_from(args)
    require_store(config)
    with open_store(config) as store:
        ids = _resolve(store, args.id)
        if len(ids) != 1:
            found = "no patch" if not ids else f"{len(ids)} patches ({', '.join(ids)})"
            raise SelfHealError(f"apply {args.id}: {found} in {store.path} match")
        patch = store.get(ids[0], Patch)
    assert patch is not None
    repo = git.toplevel(config.root) or config.root
    files = touched_files(patch.diff)
    # Porcelain lines are "XY path"; keep the leading status column (it may be a space).
    local = [ln[3:] for ln in git.run_git(repo, "status", "--porcelain", "--", *files).splitlines()]
    if local:
        changed = ", ".join(local)
        raise PatchError(
            f"apply {patch.id}: local changes in {changed}; commit or stash them first"
        )
    try:
        git.run_git(repo, "apply", "--check", "-", input_text=patch.diff)
    except SelfHealError as exc:
        raise PatchError(f"apply {patch.id}: does not apply to your tree: {exc}") from None
    if args.check:
        print(f"selfheal: patch {patch.id} applies cleanly to {len(files)} file(s)")
        return 0
    git.run_git(repo, "apply", "-", input_text=patch.diff)
    print(f"selfheal: applied patch {patch.id} ({patch.strategy}) to {', '.join(files)}")
    print("selfheal: review with `git diff` and commit; learning will follow it from there")
    return 0
