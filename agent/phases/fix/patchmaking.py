"""Turn candidates into patches with git in a scratch worktree, and check their syntax."""

from __future__ import annotations

import ast
import json
import re
import time
import tomllib
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from agent import git
from agent.phases.diagnosis.source import is_test_file
from agent.phases.fix.base import Candidate
from agent.records import Anomaly, Diagnosis, Patch

_DOC_SUFFIXES = (".md", ".rst", ".txt")
_PY_BLOCK = re.compile(r"```(?:python|py)\n(.*?)```", re.DOTALL)


def write_edits(worktree: Path, edits: Mapping[str, str | None]) -> None:
    for rel, text in edits.items():
        path = worktree / rel
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


def make_diffs(worktree: Path, candidates: Iterable[Candidate]) -> list[tuple[Candidate, str]]:
    """`git diff` of each candidate applied alone to the worktree's base commit."""
    result = []
    for cand in candidates:
        write_edits(worktree, cand.edits)
        diff = git.diff_worktree(worktree)
        # Drop the intent-to-add entries first, so that clean removes new files.
        git.run_git(worktree, "reset", "-q")
        git.reset_scratch_worktree(worktree)
        if diff.strip():
            result.append((cand, diff))
    return result


def patch_record(
    cand: Candidate, diff: str, anomaly: Anomaly, diagnosis: Diagnosis, base: str
) -> Patch:
    """A Patch with its strategy, anomaly, diagnosis and size (changed lines by kind)."""
    from unidiff.patch import PatchSet

    code = tests = docs = 0
    files = []
    for pfile in PatchSet(diff):
        files.append(pfile.path)
        changed = pfile.added + pfile.removed
        if is_test_file(pfile.path):
            tests += changed
        elif pfile.path.endswith(_DOC_SUFFIXES) or pfile.path.startswith("docs/"):
            docs += changed
        else:
            code += changed
    return Patch(
        id=f"patch-{uuid.uuid4().hex[:12]}",
        anomaly_id=anomaly.id,
        diagnosis_id=diagnosis.id,
        strategy=cand.strategy,
        fix_type=cand.fix_type,
        diff=diff,
        base_commit=base,
        created_ns=time.time_ns(),
        files=tuple(files),
        code_changes=code,
        test_changes=tests,
        doc_changes=docs,
        description=cand.description,
    )


def syntax_errors(edits: Mapping[str, str | None]) -> list[str]:
    """One message per touched file that no longer parses (Python, JSON, TOML, Markdown code)."""
    errors = []
    for path, text in edits.items():
        if text is None:
            continue
        problem = _check(path, text)
        if problem:
            errors.append(f"{path}: {problem}")
    return errors


def _check(path: str, text: str) -> str:
    try:
        if path.endswith(".py"):
            ast.parse(text, filename=path)
        elif path.endswith(".json"):
            json.loads(text)
        elif path.endswith(".toml"):
            tomllib.loads(text)
        elif path.endswith(".md"):
            for i, block in enumerate(_PY_BLOCK.findall(text), 1):
                try:
                    ast.parse(block)
                except SyntaxError as exc:
                    return f"python code block {i}: {exc.msg} (line {exc.lineno})"
    except SyntaxError as exc:
        return f"{exc.msg} (line {exc.lineno})"
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        return str(exc)
    return ""
