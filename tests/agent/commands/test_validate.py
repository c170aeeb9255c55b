"""`selfheal validate PATCH_FILE`: the gate by hand, with exit codes and one line per check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.cli import main

OPS = "def add(a, b):\n    return a - b\n"
TESTS = "from ops import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
FIX = (
    "diff --git a/ops.py b/ops.py\n--- a/ops.py\n+++ b/ops.py\n"
    "@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n"
)


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    return make_repo({"ops.py": OPS, "test_ops.py": TESTS})


@pytest.mark.slow
def test_a_correct_patch_passes_with_exit_0(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patch = tmp_path / "fix.diff"
    patch.write_text(FIX, encoding="utf-8")
    code = main(["--root", str(repo), "validate", str(patch), "--test", "test_ops.py::test_add"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ok   anomaly-tests: 1 test(s) passed 3 times in a row" in out
    assert "validation passed: manual-" in out
    assert (repo / "ops.py").read_text(encoding="utf-8") == OPS


def test_a_refused_patch_fails_with_exit_1(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patch = tmp_path / "evil.diff"
    patch.write_text(FIX.replace("ops.py", "../ops.py"), encoding="utf-8")
    assert main(["--root", str(repo), "validate", str(patch)]) == 1
    out = capsys.readouterr().out
    assert "FAIL patch-safety: path '../ops.py' has a '..' component" in out


def test_missing_or_binary_patch_file_is_one_line_error(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(repo), "validate", str(tmp_path / "none.diff")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read the patch file" in err[0]
    binary = tmp_path / "bin.diff"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["--root", str(repo), "validate", str(binary)]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err
