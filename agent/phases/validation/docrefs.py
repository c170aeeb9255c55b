"""Documentation references: which names the code in README and docs/ mentions."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from pathlib import Path

_FENCE = re.compile(r"^(```|~~~)")
_INLINE = re.compile(r"`([^`\n]+)`")
_DOC_SUFFIXES = (".md", ".rst", ".txt")
_MAX_DOC_BYTES = 2_000_000


def doc_files(root: Path) -> list[Path]:
    """README* at the top and every Markdown/reST/text file under docs/ or doc/."""
    found = [p for p in root.glob("README*") if p.is_file()]
    for name in ("docs", "doc"):
        base = root / name
        if base.is_dir():
            found += [p for p in base.rglob("*") if p.suffix in _DOC_SUFFIXES and p.is_file()]
    return sorted(p for p in found if p.stat().st_size <= _MAX_DOC_BYTES)


def code_snippets(text: str) -> Iterator[str]:
    """Fenced blocks, reST `::` blocks and inline code spans of one document."""
    in_fence = False
    block: list[str] = []
    literal = False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            if in_fence:
                yield "\n".join(block)
                block = []
            in_fence = not in_fence
            continue
        if in_fence:
            block.append(line)
            continue
        if literal and (line.startswith((" ", "\t")) or not line.strip()):
            block.append(line)
            continue
        if literal:
            yield "\n".join(block)
            block, literal = [], False
        literal = line.rstrip().endswith("::")
        yield from _INLINE.findall(line)
    if block:
        yield "\n".join(block)


def references(root: Path, names: Collection[str]) -> dict[str, tuple[str, ...]]:
    """Doc file (relative) → which of `names` its code mentions as a whole word."""
    if not names:
        return {}
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(names)) + r")\b")
    found: dict[str, tuple[str, ...]] = {}
    for path in doc_files(root):
        text = path.read_text(encoding="utf-8", errors="replace")
        hits = {m.group(1) for snippet in code_snippets(text) for m in pattern.finditer(snippet)}
        if hits:
            found[path.relative_to(root).as_posix()] = tuple(sorted(hits))
    return found
