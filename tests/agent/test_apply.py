"""`selfheal apply`: a stored patch reaches the developer's checkout only on request, and never
over local changes to the files it touches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.records import Patch
from agent.store import Store
from tests.agent.phases.delivery_kit import BUGGY, FIXED, config, git, make_patch, project


def stored_patch(make_repo: Any) -> tuple[Path, Patch]:
    repo = project(make_repo)
    patch = make_patch(repo)
    with Store.open(config(repo).store) as s:
        s.put(patch)
    return repo, patch


def test_apply_by_prefix_changes_only_the_working_tree(
    make_repo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, patch = stored_patch(make_repo)
    head = git(repo, "rev-parse", "HEAD")
    assert main(["--root", str(repo), "apply", patch.id[:8], "--check"]) == 0
    assert (repo / "calc.py").read_text() == BUGGY
    assert main(["--root", str(repo), "apply", patch.id[:8]]) == 0
    assert (repo / "calc.py").read_text() == FIXED
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "diff", "--cached") == ""  # nothing staged, nothing committed
    assert f"applied patch {patch.id}" in capsys.readouterr().out


def test_apply_by_branch_name(make_repo: Any) -> None:
    repo, patch = stored_patch(make_repo)
    assert main(["--root", str(repo), "apply", f"selfheal/new-failure-x-{patch.id[:8]}"]) == 0
    assert (repo / "calc.py").read_text() == FIXED


def test_apply_refuses_over_local_changes(
    make_repo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, patch = stored_patch(make_repo)
    (repo / "calc.py").write_text(BUGGY + "# mine\n")
    assert main(["--root", str(repo), "apply", patch.id]) == 2
    err = capsys.readouterr().err
    assert err.startswith("selfheal: error: apply") and "local changes in calc.py" in err
    assert (repo / "calc.py").read_text() == BUGGY + "# mine\n"


def test_apply_unknown_or_stale_patch(make_repo: Any, capsys: pytest.CaptureFixture[str]) -> None:
    repo, patch = stored_patch(make_repo)
    assert main(["--root", str(repo), "apply", "nosuch"]) == 2
    assert "no patch" in capsys.readouterr().err
    (repo / "calc.py").write_text("def total(xs):\n    return 0\n")
    git(repo, "commit", "-qam", "rewrite")
    assert main(["--root", str(repo), "apply", patch.id]) == 2
    assert "does not apply to your tree" in capsys.readouterr().err
