"""What diagnosis collects: related test files, tests sharing files in a stored coverage map."""

from __future__ import annotations

from pathlib import Path

from agent import coverage_map
from agent.phases.diagnosis.codebase import related_test_files, sharing_tests
from agent.store import Store


def test_sharing_tests_come_from_the_stored_coverage_map(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        assert sharing_tests(store, ["tests/test_a.py::test_x"]) == []  # no map yet
        per_test = {
            "tests/test_a.py::test_x": {"app/core.py": [1, 2], "tests/test_a.py": [5]},
            "tests/test_b.py::test_y": {"app/core.py": [2]},
            "tests/test_c.py::test_z": {"app/other.py": [1]},
            "tests/test_d.py::test_w": {"tests/test_a.py": [1]},  # shares only a test file
        }
        coverage_map.save(
            store, per_test, {"app/core.py": [1, 2], "app/other.py": [1]}, "c0ffee", False
        )
        assert sharing_tests(store, ["tests/test_a.py::test_x"]) == ["tests/test_b.py::test_y"]


def test_related_test_files_follow_imports(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_a.py").write_text("from app import f\n\n\ndef test_a(): f()\n")
    (tmp_path / "tests/test_b.py").write_text("import app.core\n\n\ndef test_b(): pass\n")
    (tmp_path / "tests/test_c.py").write_text("import other\n\n\ndef test_c(): pass\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    assert related_test_files(tmp_path, ["tests/test_a.py::test_a"]) == [
        "tests/test_a.py",
        "tests/test_b.py",
    ]
