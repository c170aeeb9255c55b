"""Partial revert of the culprit commit's hunks that touch the suspicious code; full revert."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agent.phases.diagnosis.recommend import FULL_REVERT, PARTIAL_REVERT
from agent.phases.diagnosis.source import functions_in
from agent.phases.fix.base import Candidate, FixWork
from agent.phases.fix.edits import replace_block
from agent.records import FixType

SUSPICIOUS_LINES = 10


@dataclass(frozen=True)
class Hunk:
    file: str
    before: tuple[str, ...]  # pre-image lines (context + removed)
    after: tuple[str, ...]  # post-image lines (context + added)
    target_start: int
    added_file: bool = False
    removed_file: bool = False


def parse_hunks(diff_text: str) -> list[Hunk]:
    """Hunks of a `git show`/`git diff` text, read with unidiff."""
    from unidiff.patch import PatchSet

    start = diff_text.find("diff --git")
    if start < 0:
        return []
    hunks = []
    for pfile in PatchSet(diff_text[start:]):
        if pfile.is_binary_file:
            continue
        for h in pfile:
            before = tuple(ln.value for ln in h if ln.is_context or ln.is_removed)
            after = tuple(ln.value for ln in h if ln.is_context or ln.is_added)
            hunks.append(
                Hunk(
                    pfile.path,
                    before,
                    after,
                    h.target_start,
                    pfile.is_added_file,
                    pfile.is_removed_file,
                )
            )
    return hunks


def revert_hunks(sources: dict[str, str], hunks: Iterable[Hunk]) -> dict[str, str | None] | None:
    """New texts with the hunks undone; None when a hunk no longer matches HEAD."""
    texts: dict[str, str | None] = {}
    for hunk in hunks:
        if hunk.added_file:
            texts[hunk.file] = None
            continue
        if hunk.removed_file:
            texts[hunk.file] = "".join(hunk.before)
            continue
        current = texts.get(hunk.file, sources.get(hunk.file))
        if current is None:
            return None
        done = replace_block(current, hunk.after, hunk.before, hunk.target_start)
        if done is None:
            return None
        texts[hunk.file] = done[0]
    return texts


def hunk_lines(sources: dict[str, str], hunk: Hunk) -> range:
    """The HEAD lines a hunk's post-image occupies now (empty when it cannot be found)."""
    text = sources.get(hunk.file)
    if text is None or not hunk.after:
        return range(0)
    found = replace_block(text, hunk.after, hunk.after, hunk.target_start)
    return range(0) if found is None else range(found[1], found[1] + len(hunk.after))


def touches(work: FixWork, hunk: Hunk) -> bool:
    """True when the hunk overlaps a suspicious line or a function holding one."""
    span = hunk_lines(dict(work.sources), hunk)
    if not span:
        return False
    lines = {n for f, n in work.suspicious[:SUSPICIOUS_LINES] if f == hunk.file}
    lines |= {f.line for f in work.frames if f.file == hunk.file}
    lines |= {h.line for h in work.hot if h.file == hunk.file}
    if any(n in span for n in lines):
        return True
    text = work.sources.get(hunk.file, "")
    funcs = [f for f in functions_in(hunk.file, text) if any(f.contains(n) for n in lines)]
    return any(f.contains(n) for f in funcs for n in span)


class PartialRevert:
    """Undo only the culprit's hunks that touch suspicious code: together, then one by one."""

    name = PARTIAL_REVERT
    fix_type = FixType.CODE

    def propose(self, work: FixWork) -> Iterator[Candidate]:
        hunks = [h for h in parse_hunks(work.culprit_diff) if h.file in work.sources]
        chosen = [h for h in hunks if touches(work, h)]
        sources = dict(work.sources)
        groups = [chosen] + ([[h] for h in chosen] if len(chosen) > 1 else [])
        for cost, group in enumerate(groups):
            texts = revert_hunks(sources, group)
            if texts:
                where = ", ".join(sorted({f"{h.file}:{h.target_start}" for h in group}))
                yield Candidate(self.name, self.fix_type, f"revert hunks at {where}", texts, cost)


class FullRevert:
    """Undo the whole culprit commit: the blunt last resort."""

    name = FULL_REVERT
    fix_type = FixType.CODE

    def propose(self, work: FixWork) -> Iterator[Candidate]:
        hunks = parse_hunks(work.culprit_diff)
        if not hunks:
            return
        texts = revert_hunks(dict(work.sources), hunks)
        if texts:
            commit = work.diagnosis.culprit_commit[:10]
            yield Candidate(self.name, self.fix_type, f"revert commit {commit}", texts, 0)
