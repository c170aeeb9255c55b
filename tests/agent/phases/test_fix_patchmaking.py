"""Patches are git diffs of candidates written into a scratch worktree; syntax is checked."""

from __future__ import annotations

from pathlib import Path

from agent.phases.diagnosis.codebase import scratch_worktree
from agent.phases.fix.base import Candidate
from agent.phases.fix.patchmaking import make_diffs, patch_record, syntax_errors
from agent.records import FixType
from tests.agent.phases.fix_kit import work


def test_diffs_come_from_git_and_leave_the_checkout_alone(make_repo) -> None:
    repo: Path = make_repo({"m.py": "X = 1\n", "tests/test_m.py": "def test(): pass\n"})
    before = (repo / "m.py").read_text()
    cands = [
        Candidate("mutation", FixType.CODE, "1 -> 2", {"m.py": "X = 2\n"}),
        Candidate(
            "regression_test",
            FixType.TEST,
            "new test",
            {"m.py": "X = 2\n", "tests/test_new.py": "def test_x(): pass\n"},
        ),
        Candidate("full_revert", FixType.CODE, "delete", {"m.py": None}),
        Candidate("mutation", FixType.CODE, "no-op", {"m.py": "X = 1\n"}),
    ]
    with scratch_worktree(repo, "HEAD", "test") as wt:
        diffs = make_diffs(wt, cands)
    assert [c.description for c, _ in diffs] == ["1 -> 2", "new test", "delete"]
    assert "-X = 1\n+X = 2" in diffs[0][1]
    assert "new file mode" in diffs[1][1] and "deleted file mode" in diffs[2][1]
    assert (repo / "m.py").read_text() == before
    w = work({})
    patch = patch_record(diffs[1][0], diffs[1][1], w.anomaly, w.diagnosis, "HEAD")
    assert patch.files == ("m.py", "tests/test_new.py")
    assert (patch.code_changes, patch.test_changes) == (2, 1)
    assert patch.strategy == "regression_test" and patch.diagnosis_id == "d1"


def test_syntax_errors_name_the_file_and_the_problem() -> None:
    errors = syntax_errors(
        {
            "a.py": "def f(:\n",
            "b.json": "{",
            "c.toml": "x = ",
            "d.md": "text\n```python\nif True print(1)\n```\n",
            "ok.py": "x = 1\n",
            "gone.py": None,
        }
    )
    assert [e.split(":")[0] for e in errors] == ["a.py", "b.json", "c.toml", "d.md"]
