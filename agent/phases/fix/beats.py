"""The nine beats of fix.generate, on one frozen baton."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent import git
from agent.conductor import BeatContext, Conductor
from agent.errors import GitError
from agent.handlers import HandlerSet
from agent.phases.diagnosis.codebase import CodebaseInfo, scratch_worktree, show_commit
from agent.phases.diagnosis.pytest_exec import Frame
from agent.phases.diagnosis.recommend import FULL_REVERT, REGRESSION_TEST
from agent.phases.diagnosis.source import is_test_file
from agent.phases.fix import llm, patchmaking
from agent.phases.fix.base import Candidate, FixWork, Strategy
from agent.phases.fix.docs import DocumentationFix
from agent.phases.fix.mutation import MutationSearch
from agent.phases.fix.perf import PerformanceTemplates
from agent.phases.fix.revert import FullRevert, PartialRevert
from agent.phases.fix.templates import RepairTemplates
from agent.phases.fix.testfix import CharacterisationTests, RegressionTest
from agent.records import Anomaly, AnomalyKind, Diagnosis, FixType, Patch

HANDLERS = HandlerSet("fix")
CODE_STRATEGIES: tuple[Strategy, ...] = (
    PartialRevert(),
    RepairTemplates(),
    MutationSearch(),
    PerformanceTemplates(),
    FullRevert(),
)
TEST_STRATEGIES: tuple[Strategy, ...] = (RegressionTest(), CharacterisationTests())
DOC_FOLLOW = 20  # code candidates whose docstrings are checked for staleness
MAX_PATCHES = 200


@dataclass(frozen=True)
class FixBaton:
    anomaly: Anomaly | None = None
    diagnosis: Diagnosis | None = None
    diagnosis_id: str = ""
    codebase: CodebaseInfo | None = None  # handed over by an in-process diagnosis
    max_patches: int = MAX_PATCHES
    started_ns: int = 0
    base_commit: str = ""
    work: FixWork | None = None
    code: tuple[Candidate, ...] = ()
    tests: tuple[Candidate, ...] = ()
    docs: tuple[Candidate, ...] = ()
    candidates: tuple[Candidate, ...] = ()  # aligned with `patches`
    patches: tuple[Patch, ...] = ()


def _work(baton: FixBaton) -> FixWork:
    if baton.work is None:
        raise ValueError("no fix work on the baton (loadDiagnosis did not run?)")
    return baton.work


@HANDLERS.beat("generateFixRequested", "pure")
def generate_fix_requested(baton: FixBaton, ctx: BeatContext) -> FixBaton:
    if baton.diagnosis is None and not baton.diagnosis_id:
        raise ValueError("fix generation needs a diagnosis or a diagnosis id")
    if baton.max_patches < 1:
        raise ValueError(f"max_patches must be at least 1, got {baton.max_patches}")
    return dataclasses.replace(baton, started_ns=time.time_ns())


@HANDLERS.beat("loadDiagnosis", "stage-crew")
def load_diagnosis(baton: FixBaton, ctx: BeatContext) -> FixBaton:
    diagnosis = baton.diagnosis or ctx.store.get(baton.diagnosis_id, Diagnosis)
    if diagnosis is None:
        raise ValueError(f"diagnosis {baton.diagnosis_id!r} is not in the store {ctx.store.path}")
    anomaly = baton.anomaly or ctx.store.get(diagnosis.anomaly_id, Anomaly)
    if anomaly is None:
        raise ValueError(f"anomaly {diagnosis.anomaly_id!r} of {diagnosis.id} is not stored")
    repo = git.toplevel(ctx.config.root)
    if repo is None:
        raise GitError(f"{ctx.config.root}: not a git repository")
    base = baton.codebase.head if baton.codebase else git.head_commit(repo)
    work = build_work(repo, base, anomaly, diagnosis, baton.codebase)
    if anomaly.kind is AnomalyKind.COVERAGE:
        work = dataclasses.replace(work, observations=observe(repo, base, work, ctx.remaining()))
    if ctx.config.llm_url and ctx.config.llm_model:
        ctx.progress(f"fix: asking the model {ctx.config.llm_model} for a patch")
        reply = llm.request(
            ctx.config.llm_url,
            ctx.config.llm_model,
            llm.prompt(work),
            min(60.0, max(ctx.remaining() / 4, 1.0)),
        )
        work = dataclasses.replace(work, llm_reply=reply)
    return dataclasses.replace(
        baton, diagnosis=diagnosis, anomaly=anomaly, work=work, base_commit=base
    )


def build_work(
    repo: Path, base: str, anomaly: Anomaly, diagnosis: Diagnosis, info: CodebaseInfo | None
) -> FixWork:
    causes = diagnosis.root_causes
    frames, exception = _failure(info, anomaly)
    suspicious = [
        (c.location.file, c.location.line)
        for c in causes
        if c.location.file and c.location.line and c.evidence.get("kind") in ("frame", "ochiai")
    ]
    hot = tuple(c.location for c in causes if c.evidence.get("kind") == "profile")
    suspicious += [(h.file, h.line) for h in hot]
    culprit = ""
    if info is not None and info.culprit_diff:
        culprit = info.culprit_diff
    elif diagnosis.culprit_commit:
        culprit = show_commit(repo, diagnosis.culprit_commit)
    wanted = {f for f, _ in suspicious} | {f.file for f in frames} | {h.file for h in hot}
    wanted |= {loc.file for loc in diagnosis.affected_code if loc.file}
    wanted |= _diff_files(culprit)
    sources = dict(info.sources) if info else {}
    sources.update(_read_at(repo, base, sorted(wanted - set(sources))))
    return FixWork(
        anomaly=anomaly,
        diagnosis=diagnosis,
        sources=sources,
        suspicious=tuple(dict.fromkeys(suspicious)),
        frames=frames,
        exception=exception,
        culprit_diff=culprit,
        hot=hot,
        test_dir=_test_dir(anomaly.tests),
    )


def _failure(info: CodebaseInfo | None, anomaly: Anomaly) -> tuple[tuple[Frame, ...], str]:
    if info is None:
        return (), str(anomaly.evidence.get("exception_type", ""))
    for test in [*anomaly.tests, *info.tests]:
        result = info.tests.get(test)
        if result is not None and not result.ok:
            own = tuple(f for f in result.frames if not is_test_file(f.file))
            return own, result.exception
    return (), ""


def _diff_files(diff_text: str) -> set[str]:
    return {line[6:] for line in diff_text.splitlines() if line.startswith("+++ b/")} | {
        line[6:] for line in diff_text.splitlines() if line.startswith("--- a/")
    }


def _read_at(repo: Path, commit: str, paths: Iterable[str]) -> dict[str, str]:
    texts = {}
    for rel in paths:
        with contextlib.suppress(GitError):
            texts[rel] = git.run_git(repo, "show", f"{commit}:{rel}")
    return texts


def _test_dir(tests: Sequence[str]) -> str:
    for test in tests:
        path = test.split("::", 1)[0]
        if "/" in path:
            return path.rsplit("/", 1)[0]
    return "tests"


_OBSERVE = """
import importlib, json, sys
out = {}
for key in json.loads(sys.argv[1]):
    file, func = key.split("::")
    mod = file[:-3].replace("/", ".").removeprefix("src.")
    try:
        out[key] = repr(getattr(importlib.import_module(mod), func)())
    except Exception:
        pass
print(json.dumps(out))
"""


def observe(repo: Path, base: str, work: FixWork, remaining: float) -> dict[str, str]:
    """Results of uncovered functions that take no arguments, observed at the base commit.

    Only functions that look pure (no I/O, no global state, see perf.is_pure) are called: this
    runs project code that no test runs yet.
    """
    import ast

    from agent.phases.fix.perf import is_pure

    keys = []
    for loc in work.diagnosis.affected_code:
        text = work.sources.get(loc.file, "")
        with contextlib.suppress(SyntaxError):
            for node in ast.parse(text).body:
                if (
                    isinstance(node, ast.FunctionDef)
                    and node.name == loc.function
                    and (len(node.args.args) == len(node.args.defaults))
                    and is_pure(node)
                ):
                    keys.append(f"{loc.file}::{loc.function}")
    if not keys:
        return {}
    with scratch_worktree(repo, base, "observe") as wt:
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _OBSERVE, json.dumps(keys)],
                cwd=wt,
                capture_output=True,
                text=True,
                timeout=max(1.0, min(20.0, remaining)),
                env={"PYTHONPATH": str(wt), "PYTHONDONTWRITEBYTECODE": "1", "PATH": ""},
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {}
    try:
        data = json.loads(proc.stdout or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()}


def _order(diagnosis: Diagnosis, strategies: Sequence[Strategy]) -> list[Strategy]:
    """The diagnosis's learned order; unknown strategies after; the full revert always last."""
    rank = {r.strategy: r.priority for r in diagnosis.suggested_fixes}
    listed = [s for s in strategies if s.name in rank or not rank]
    listed.sort(key=lambda s: (s.name == FULL_REVERT, rank.get(s.name, 99)))
    return listed


def _collect(
    work: FixWork, strategies: Iterable[Strategy], seen: set[tuple[tuple[str, str | None], ...]]
) -> list[Candidate]:
    result = []
    for strategy in strategies:
        for cand in sorted(strategy.propose(work), key=lambda c: c.cost):
            key = cand.key()
            if key not in seen:
                seen.add(key)
                result.append(cand)
    return result


@HANDLERS.beat("generateCodeFix", "pure")
def generate_code_fix(baton: FixBaton, ctx: BeatContext) -> FixBaton:
    work = _work(baton)
    strategies = _order(work.diagnosis, CODE_STRATEGIES)
    if work.llm_reply:
        strategies.insert(min(2, len(strategies)), llm.ModelGenerator())
    return dataclasses.replace(baton, code=tuple(_collect(work, strategies, set())))


@HANDLERS.beat("generateTestFix", "pure")
def generate_test_fix(baton: FixBaton, ctx: BeatContext) -> FixBaton:
    work = _work(baton)
    seen = {c.key() for c in baton.code}
    return dataclasses.replace(baton, tests=tuple(_collect(work, TEST_STRATEGIES, seen)))


@HANDLERS.beat("generateDocumentationFix", "pure")
def generate_documentation_fix(baton: FixBaton, ctx: BeatContext) -> FixBaton:
    work = dataclasses.replace(_work(baton), prior=baton.code[:DOC_FOLLOW])
    seen = {c.key() for c in baton.code + baton.tests}
    return dataclasses.replace(baton, docs=tuple(_collect(work, [DocumentationFix()], seen)))


def _interleave(baton: FixBaton) -> list[Candidate]:
    """Code candidates in order, each documentation follow-up right after its code candidate,
    test fixes last: a test alone cannot fix the code."""
    follow = {c.description.split("; docstrings")[0]: c for c in baton.docs}
    out: list[Candidate] = []
    for cand in baton.code:
        out.append(cand)
        if cand.description in follow:
            out.append(follow[cand.description])
    return out + list(baton.tests)


@HANDLERS.beat("createPatch", "stage-crew")
def create_patch(baton: FixBaton, ctx: BeatContext) -> FixBaton:
    work = _work(baton)
    diagnosis, anomaly = work.diagnosis, work.anomaly
    chosen = _interleave(baton)[: baton.max_patches]
    repo = git.toplevel(ctx.config.root) or ctx.config.root
    ctx.progress(
        f"fix: {len(chosen)} candidate(s) from {len({c.strategy for c in chosen})} "
        "strategies; writing diffs"
    )
    with scratch_worktree(repo, baton.base_commit, "fix") as wt:
        diffs = patchmaking.make_diffs(wt, chosen)
    patches = [
        patchmaking.patch_record(c, d, anomaly, diagnosis, baton.base_commit) for c, d in diffs
    ]
    return dataclasses.replace(baton, candidates=tuple(c for c, _ in diffs), patches=tuple(patches))


@HANDLERS.beat("validateSyntax", "pure")
def validate_syntax(baton: FixBaton, ctx: BeatContext) -> FixBaton:
    checked = []
    for cand, patch in zip(baton.candidates, baton.patches, strict=True):
        errors = patchmaking.syntax_errors(cand.edits)
        checked.append(
            dataclasses.replace(patch, syntax_valid=not errors, syntax_errors=tuple(errors))
        )
    return dataclasses.replace(baton, patches=tuple(checked))


@HANDLERS.beat("storePatch", "stage-crew")
def store_patch(baton: FixBaton, ctx: BeatContext) -> FixBaton:
    anomaly = baton.anomaly
    for patch in baton.patches:
        ctx.store.put(patch, run_id=anomaly.run_id if anomaly else 0, subject=patch.anomaly_id)
    return baton


@HANDLERS.beat("generateFixCompleted", "pure")
def generate_fix_completed(baton: FixBaton, ctx: BeatContext) -> FixBaton:
    valid = [p for p in baton.patches if p.syntax_valid]
    kinds = sorted({p.fix_type.value for p in valid})
    ctx.progress(f"fix: {len(valid)} patch(es) ready for the gate ({', '.join(kinds) or 'none'})")
    return baton


def code_patches(baton: FixBaton) -> list[tuple[Candidate, Patch]]:
    """Syntax-valid patches in generation order, with their candidates; for a coverage gap the
    test patches (a test alone cannot fix code, but it closes a gap)."""
    tests_only = baton.anomaly is not None and baton.anomaly.kind is AnomalyKind.COVERAGE
    return [
        (c, p)
        for c, p in zip(baton.candidates, baton.patches, strict=True)
        if p.syntax_valid and (p.fix_type is FixType.TEST) == tests_only
    ]


def follow_up_patches(conductor: Conductor, baton: FixBaton, best: Patch) -> list[Patch]:
    """Patches that extend a validated code patch: its regression test, its stale docstrings.

    Made like every other patch (git diff in a scratch worktree) and stored; the caller runs
    them through the gate.
    """
    work = _work(baton)
    code = next(
        (c for c, p in zip(baton.candidates, baton.patches, strict=True) if p.id == best.id), None
    )
    if code is None:
        return []
    combined = [
        Candidate(
            t.strategy,
            t.fix_type,
            f"{code.description}; {t.description}",
            {**code.edits, **t.edits},
            t.cost,
        )
        for t in baton.tests
        if t.strategy == REGRESSION_TEST
    ]
    combined += list(DocumentationFix().follow(work.sources, code))
    combined = [c for c in combined if not patchmaking.syntax_errors(c.edits)]
    if not combined:
        return []
    repo = git.toplevel(conductor.config.root) or conductor.config.root
    with scratch_worktree(repo, baton.base_commit, "follow-up") as wt:
        diffs = patchmaking.make_diffs(wt, combined)
    patches = [
        patchmaking.patch_record(c, d, work.anomaly, work.diagnosis, baton.base_commit)
        for c, d in diffs
    ]
    store = conductor.store()
    for patch in patches:
        store.put(patch, run_id=work.anomaly.run_id, subject=patch.anomaly_id)
    return patches
