"""`selfheal heal [PATH]`: user errors are one line; a clean project has nothing to heal."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main


def test_a_missing_path_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["heal", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope: not a directory" in err[0]


def test_a_non_positive_budget_is_refused(make_repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo({"m.py": "X = 1\n"})
    assert main(["heal", str(repo), "--budget", "0"]) == 2
    assert "--budget=0.0: expected a positive number" in capsys.readouterr().err


@pytest.mark.slow
def test_a_green_project_has_nothing_to_heal(make_repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(
        {
            "m.py": "X = 1\n",
            "test_m.py": "from m import X\n\n\ndef test_x():\n    assert X == 1\n",
            "conftest.py": "",
        }
    )
    assert main(["heal", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "running the tests" in out and "nothing to heal" in out
    assert (repo / ".selfheal" / "selfheal.db").is_file()
