"""Build seeded bugs into git repositories: python bench/repair/build.py DEST [NAME...]."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bug import Bug, Built, build
from corpus_history import BUGS as HISTORY
from corpus_plain import BUGS as PLAIN

ALL: list[Bug] = HISTORY + PLAIN


def by_name(names: list[str]) -> list[Bug]:
    known = {b.name: b for b in ALL}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown bug(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names] if names else ALL


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    dest = Path(argv[0])
    for bug in by_name(argv[1:]):
        built: Built = build(bug, dest / bug.name)
        print(f"{bug.name}: {built.repo} faulty lines {list(built.faulty_lines)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
