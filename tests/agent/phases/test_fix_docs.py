"""Documentation fixes: docstrings made stale by a code change are updated with it."""

from __future__ import annotations

from dataclasses import replace

from agent.phases.fix.base import Candidate
from agent.phases.fix.docs import DocumentationFix, refresh_docstrings
from agent.records import FixType
from tests.agent.phases.fix_kit import work

BEFORE = '''def page(items, size=10):
    """Return the first 10 items; `size` defaults to 10."""
    return items[:size]
'''


def test_changed_constant_is_updated_in_the_docstring() -> None:
    after = BEFORE.replace("size=10", "size=20")
    fresh = refresh_docstrings(BEFORE, after)
    assert '"""Return the first 20 items; `size` defaults to 20."""' in fresh
    assert "size=20" in fresh


def test_renamed_parameter_is_updated() -> None:
    after = BEFORE.replace("size", "limit")
    after = after.replace("`limit` defaults", "`size` defaults")  # the code changed, docs did not
    assert "`limit` defaults" in refresh_docstrings(BEFORE, after)


def test_unrelated_changes_leave_docstrings_alone() -> None:
    after = BEFORE.replace("items[:size]", "list(items)[:size]")
    assert refresh_docstrings(BEFORE, after) == after


def test_follow_ups_extend_code_candidates_only_when_something_is_stale() -> None:
    code = Candidate("mutation", FixType.CODE, "10 -> 20", {"m.py": BEFORE.replace("=10", "=20")})
    same = Candidate(
        "mutation", FixType.CODE, "list()", {"m.py": BEFORE.replace("items[", "(items)[")}
    )
    found = list(DocumentationFix().propose(replace(work({"m.py": BEFORE}), prior=(code, same))))
    assert len(found) == 1 and found[0].fix_type is FixType.DOCUMENTATION
    assert "first 20 items" in str(found[0].edits["m.py"])
