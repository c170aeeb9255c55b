"""Differential profile: functions whose cumulative time grew between two profiles."""

from __future__ import annotations

import cProfile
from pathlib import Path

from agent.phases.diagnosis.profile import grown_functions, read_profile


def test_grown_functions_names_the_growth_largest_first() -> None:
    base = {("a.py", 1, "fast"): (1, 0.010), ("a.py", 9, "same"): (1, 0.050)}
    now = {
        ("a.py", 1, "fast"): (100, 0.400),
        ("a.py", 9, "same"): (1, 0.0505),
        ("b.py", 3, "new"): (5, 0.100),
    }
    rows = grown_functions(base, now)
    assert [r.function for r in rows] == ["fast", "new"]
    assert rows[0].base_calls == 1 and rows[0].current_calls == 100


def test_a_moved_function_is_matched_by_name() -> None:
    rows = grown_functions({("a.py", 1, "f"): (1, 0.2)}, {("a.py", 5, "f"): (1, 0.5)})
    assert rows[0].base_s == 0.2 and rows[0].line == 5


def test_growth_below_timer_noise_is_not_named() -> None:
    assert grown_functions({("a.py", 1, "f"): (1, 0.2)}, {("a.py", 1, "f"): (1, 0.2005)}) == []


def test_read_profile_keeps_project_functions_only(tmp_path: Path) -> None:
    module = tmp_path / "work.py"
    module.write_text("def spin(n):\n    return sum(i * i for i in range(n))\n")
    namespace: dict[str, object] = {}
    exec(compile(module.read_text(), str(module), "exec"), namespace)
    out = tmp_path / "run.prof"
    profiler = cProfile.Profile()
    profiler.runcall(namespace["spin"], 20000)  # type: ignore[arg-type]
    profiler.dump_stats(out)
    profile = read_profile(out, tmp_path)
    assert ("work.py", 1, "spin") in profile
    assert all(file == "work.py" for file, _, _ in profile)
