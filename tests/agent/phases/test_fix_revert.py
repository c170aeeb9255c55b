"""Partial and full revert of the culprit commit, computed on in-memory sources."""

from __future__ import annotations

from pathlib import Path

from agent.phases.fix.revert import FullRevert, PartialRevert, parse_hunks, revert_hunks
from tests.agent.phases.fix_kit import work

GOOD = "def a():\n    return 1\n\n\n\n\n\n\ndef b():\n    return 2\n"
BAD = "def a():\n    return 10\n\n\n\n\n\n\ndef b():\n    return 20\n"


def _culprit(tmp_path: Path, make_repo, extra: dict[str, str] | None = None) -> tuple[str, str]:
    from tests.agent.phases.fix_kit import commit_files, git

    repo = make_repo({"m.py": GOOD})
    commit_files(repo, {"m.py": BAD, **(extra or {})}, "both functions change")
    return git(repo, "show", "HEAD"), BAD


def test_parse_hunks_reads_both_sides(tmp_path: Path, make_repo) -> None:
    diff, _ = _culprit(tmp_path, make_repo)
    hunks = parse_hunks(diff)
    assert len(hunks) == 2
    assert "    return 1\n" in hunks[0].before and "    return 10\n" in hunks[0].after


def test_partial_revert_undoes_only_the_suspicious_hunk(tmp_path: Path, make_repo) -> None:
    diff, bad = _culprit(tmp_path, make_repo)
    cands = list(PartialRevert().propose(work({"m.py": bad}, (("m.py", 10),), culprit_diff=diff)))
    assert cands and cands[0].edits["m.py"] == bad.replace("return 20", "return 2")


def test_full_revert_restores_the_parent_and_deletes_added_files(tmp_path: Path, make_repo) -> None:
    diff, bad = _culprit(tmp_path, make_repo, {"new.py": "X = 1\n"})
    (cand,) = FullRevert().propose(work({"m.py": bad, "new.py": "X = 1\n"}, culprit_diff=diff))
    assert cand.edits == {"m.py": GOOD, "new.py": None}


def test_a_hunk_that_no_longer_matches_is_not_reverted(tmp_path: Path, make_repo) -> None:
    diff, _ = _culprit(tmp_path, make_repo)
    moved_on = BAD.replace("return 10", "return 11")
    assert revert_hunks({"m.py": moved_on}, parse_hunks(diff)[:1]) is None
    later = "# header\n" + BAD  # lines shifted by a later commit: still found
    texts = revert_hunks({"m.py": later}, parse_hunks(diff))
    assert texts == {"m.py": "# header\n" + GOOD}
