"""Per-test coverage maps: store round trip, queries, gaps, and when `auto` refreshes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent import coverage_map
from agent.git import head_commit
from agent.store import Store
from conftest import git  # the repository-root conftest (rootdir on sys.path)

PER_TEST = {
    "t.py::a": {"app.py": [1, 2, 3], "t.py": [5]},
    "t.py::b": {"app.py": [1, 7]},
    "": {"app.py": [10]},  # import time: covered, but by no test
}
STATEMENTS = {"app.py": [1, 2, 3, 7, 8, 10], "t.py": [5]}


def test_round_trip_and_queries(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        map_id = coverage_map.save(
            store, per_test=PER_TEST, statements=STATEMENTS, commit="abc", dirty=False, run_id=3
        )
        cmap = coverage_map.load(store, map_id)
        assert cmap is not None and cmap.commit == "abc"
        assert cmap.tests_touching("app.py", [7]) == ["t.py::b"]
        assert cmap.tests_touching("app.py") == ["t.py::a", "t.py::b"]  # not import time
        assert cmap.lines_of("t.py::a")["app.py"] == frozenset({1, 2, 3})
        assert round(cmap.total_percent, 3) == round(100 * 6 / 7, 3)  # line 8 never ran
        assert coverage_map.summary(store, map_id) == ("abc", False, cmap.total_percent)
        only = coverage_map.load(store, map_id, files=["t.py"])
        assert only is not None and set(only.statements) == {"t.py"}
        gaps, changed = coverage_map.uncovered(cmap, {"app.py": {7, 8, 9}, "README.md": {1}})
        assert gaps == {"app.py": (8,)} and changed == 2  # 9 is not a statement
        assert coverage_map.latest_id(store, commit="abc") == map_id
        assert coverage_map.latest_id(store, commit="other") == 0


def test_auto_refreshes_only_when_python_changed(
    tmp_path: Path, make_repo: Callable[..., Path]
) -> None:
    repo = make_repo({"app.py": "x = 1\n", "README.md": "hi\n"})
    commit = head_commit(repo)
    with Store.open(tmp_path / "s.db") as store:
        assert not coverage_map.map_is_due(store, repo, commit, False, "e")  # first run
        store.begin_run("test", commit=commit, env_key="e")
        assert not coverage_map.map_is_due(store, repo, commit, False, "e")  # nothing changed
        (repo / "README.md").write_text("docs only\n")
        assert not coverage_map.map_is_due(store, repo, commit, True, "e")
        (repo / "app.py").write_text("x = 2\n")
        assert coverage_map.map_is_due(store, repo, commit, True, "e")
        assert not coverage_map.map_is_due(store, repo, commit, True, "other-env")
        git(repo, "commit", "-qam", "change")
        new = head_commit(repo)
        assert coverage_map.map_is_due(store, repo, new, False, "e")  # changed since the run
        coverage_map.save(store, PER_TEST, STATEMENTS, new, False)
        assert not coverage_map.map_is_due(store, repo, new, False, "e")  # fresh map


def test_statements_are_reused_while_a_file_is_unchanged(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("x = 1\nif x:\n    y = 2\n")
    collector = coverage_map.Collector(tmp_path, cache=tmp_path / "cache.json")
    lines, entry = collector._statements(str(source), None)
    assert lines == [1, 2, 3]
    assert collector._statements(str(source), [entry[0], [7]])[0] == [7]  # same content: cached
    source.write_text("x = 1\n")
    assert collector._statements(str(source), entry)[0] == [1]  # changed: parsed again
