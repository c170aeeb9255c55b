"""Learning against real git history and a real store: applied fixes, later runs, the model."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from agent import git as agit
from agent.config import Config
from agent.phases import deployment, learning
from agent.phases.deployment import DeployBaton, DeployRequest
from agent.phases.learning import TrackBaton, TrackRequest
from agent.phases.learning.applied import find_applied
from agent.phases.learning.model import rank_strategies, strategy_scores
from agent.records import Anomaly, AnomalyKind, EffectivenessData, Patch
from agent.store import Store
from tests.agent.phases.delivery_kit import (
    FIXED,
    TESTS,
    anomaly,
    commit_files,
    conductor,
    config,
    git,
    make_patch,
    project,
    record_run,
    validated,
)

LADDER = ["partial_revert", "template", "mutation"]
TOTAL, MEAN = "test_calc.py::test_total", "test_calc.py::test_mean"


def green(ms: int = 2) -> dict[str, tuple[str, int]]:
    return {TOTAL: ("passed", ms * 10**6), MEAN: ("passed", 10**6)}


def broken_history(repo: Path, cfg: Config, strategy: str) -> tuple[Patch, Anomaly]:
    """Run 1 green on the good commit, run 2 red on the bad one; its anomaly and a patch."""
    good = git(repo, "rev-parse", "HEAD~1").strip()
    bad = agit.head_commit(repo)
    patch = dataclasses.replace(make_patch(repo), strategy=strategy)
    with Store.open(cfg.store) as s:
        r1 = record_run(s, good, green())
        r2 = record_run(s, bad, {TOTAL: ("failed", 10**6), MEAN: ("failed", 10**6)})
        a = dataclasses.replace(anomaly(commit=bad), run_id=r2, baseline_run_id=r1)
        s.put(a, run_id=r2, subject=a.subject)
        s.put(patch)
        s.put(validated(patch), subject=patch.id)
    return patch, a


def merge(cfg: Config, tmp_path: Path, patch: Patch, a: Anomaly) -> DeployBaton:
    request = DeployRequest(patch_id=patch.id, mode="merge", run_id=99)
    c = conductor(
        dataclasses.replace(cfg, ci_command="true"),
        tmp_path,
        deployment.HANDLERS,
        names=("deployment.deploy.json",),
    )
    with c:
        baton: DeployBaton = c.play("deployment.deploy", DeployBaton(request))
    assert baton.merge_commit, baton.reasons
    return baton


def diagnosis_rank(store: Store, a: Anomaly, strategy: str) -> int:
    from agent.phases.diagnosis.beats import load_learned
    from agent.phases.diagnosis.recommend import recommend

    ladder = recommend(a.kind, load_learned(store, a), have_culprit=True)
    return [r.strategy for r in ladder].index(strategy)


def track(cfg: Config, tmp_path: Path) -> TrackBaton:
    with conductor(cfg, tmp_path, learning.HANDLERS, names=("learning.track.json",)) as c:
        baton: TrackBaton = c.play("learning.track", TrackBaton(TrackRequest()))
    return baton


def test_second_run_after_merged_fix_records_success_and_raises_rank(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = project(make_repo)
    cfg = config(repo)
    patch, a = broken_history(repo, cfg, "mutation")
    with Store.open(cfg.store) as s:
        assert rank_strategies(LADDER, strategy_scores(s, AnomalyKind.ERROR)) == LADDER
        rank_before = diagnosis_rank(s, a, "mutation")
    merged = merge(cfg, tmp_path, patch, a)

    first = track(cfg, tmp_path)  # merged, but no run since: nothing to judge yet
    (rec,) = first.records
    assert (rec.outcome, rec.counted, rec.applied_commit) == (
        "pending",
        False,
        merged.branch_commit,
    )

    with Store.open(cfg.store) as s:
        record_run(s, merged.merge_commit, green())
    second = track(cfg, tmp_path)
    (rec,) = second.records
    assert rec.outcome == "success" and rec.success and rec.counted
    assert rec.before["failure_rate"] == 1.0 and rec.after["failure_rate"] == 0.0
    assert rec.error_improvement == 1.0 and rec.time_to_heal_ns > 0
    assert any("mutation fix for test_calc.py::test_total (trailer" in i for i in first.insights)
    assert any(": success" in i and "healed in" in i for i in second.insights), second.insights
    with Store.open(cfg.store) as s:
        scores = strategy_scores(s, AnomalyKind.ERROR)
        assert scores == {"mutation": 2 / 3}
        assert rank_strategies(LADDER, scores)[0] == "mutation"
        # Diagnosis's own ladder (with its fixed priors) moves the strategy up too.
        assert diagnosis_rank(s, a, "mutation") < rank_before
        stored = s.get(f"eff-{patch.id}", EffectivenessData)
    assert stored == rec

    track(cfg, tmp_path)  # a third look counts nothing twice
    with Store.open(cfg.store) as s:
        assert strategy_scores(s, AnomalyKind.ERROR) == {"mutation": 2 / 3}


def test_fix_applied_by_hand_is_found_and_new_breakage_is_a_failure(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = project(make_repo)
    cfg = config(repo)
    patch, _ = broken_history(repo, cfg, "template")
    # The developer applies the patch file themselves, with unrelated work in the same commit.
    (repo / "calc.py").write_text(FIXED)
    sha = commit_files(repo, {"notes.txt": "misc\n"}, "fix total and notes")
    found = find_applied(repo, patch.id, patch.diff, patch.base_commit)
    assert found is not None and (found.commit, found.how) == (sha, "content")
    with Store.open(cfg.store) as s:
        record_run(
            s,
            sha,
            {
                TOTAL: ("passed", 10**6),
                MEAN: ("failed", 10**6),
                "test_calc.py::test_other": ("failed", 10**6),
            },
        )
    (rec,) = track(cfg, tmp_path).records
    assert rec.outcome == "failure"
    assert any("newly failing since the fix: test_calc.py::test_other" in r for r in rec.insights)
    with Store.open(cfg.store) as s:
        assert strategy_scores(s, AnomalyKind.ERROR) == {"template": 1 / 3}
        assert rank_strategies(LADDER, strategy_scores(s, "error"))[-1] == "template"


def test_cherry_pick_without_trailer_is_found_by_patch_id_and_revert_is_a_failure(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = project(make_repo)
    cfg = config(repo)
    patch, _ = broken_history(repo, cfg, "partial_revert")
    commit_files(repo, {"other.txt": "x\n"}, "unrelated")
    agit.run_git(repo, "apply", "--index", "-", input_text=patch.diff)
    git(repo, "commit", "-q", "-m", "fix total")
    fix = agit.head_commit(repo)
    found = find_applied(repo, patch.id, patch.diff, patch.base_commit)
    assert found is not None and (found.commit, found.how, found.present) == (fix, "patch-id", True)

    git(repo, "revert", "--no-edit", fix)
    gone = find_applied(repo, patch.id, patch.diff, patch.base_commit)
    assert gone is not None and gone.present is False
    (rec,) = track(cfg, tmp_path).records
    assert rec.outcome == "failure" and "no longer in HEAD" in rec.insights[0]


def test_never_applied_patch_is_not_tracked(make_repo: Any, tmp_path: Path) -> None:
    repo = project(make_repo)
    cfg = config(repo)
    patch, _ = broken_history(repo, cfg, "mutation")
    assert find_applied(repo, patch.id, patch.diff, patch.base_commit) is None
    assert track(cfg, tmp_path).records == ()
    assert (repo / "test_calc.py").read_text() == TESTS


def test_performance_fix_judged_on_timing_against_baseline(make_repo: Any, tmp_path: Path) -> None:
    repo = project(make_repo)
    cfg = config(repo)
    good, bad = git(repo, "rev-parse", "HEAD~1").strip(), agit.head_commit(repo)
    patch = dataclasses.replace(make_patch(repo), strategy="memoise")
    with Store.open(cfg.store) as s:
        r1 = record_run(s, good, green(ms=10))
        r2 = record_run(s, bad, green(ms=40))
        a = dataclasses.replace(
            anomaly(commit=bad),
            kind=AnomalyKind.PERFORMANCE,
            subtype="slowdown",
            run_id=r2,
            baseline_run_id=r1,
        )
        s.put(a, run_id=r2, subject=a.subject)
        s.put(patch)
        s.put(validated(patch), subject=patch.id)
    agit.run_git(repo, "apply", "--index", "-", input_text=patch.diff)
    git(repo, "commit", "-q", "-m", "speed up")
    traced = {TOTAL: ("passed", -1), MEAN: ("passed", -1)}  # a coverage refresh's rows
    with Store.open(cfg.store) as s:
        record_run(s, agit.head_commit(repo), traced)
        record_run(s, agit.head_commit(repo), green(ms=11))
        record_run(s, agit.head_commit(repo), green(ms=12))
    (rec,) = track(cfg, tmp_path).records
    assert rec.outcome == "success"
    assert (rec.before["duration_ms"], rec.after["duration_ms"]) == (40.0, 11.5)
    assert round(rec.performance_improvement, 4) == round((40 - 11.5) / 40, 4)


def test_error_anomaly_named_by_signature_is_followed_through_its_tests(
    make_repo: Any, tmp_path: Path
) -> None:
    repo = project(make_repo)
    cfg = config(repo)
    patch, a = broken_history(repo, cfg, "repair_template")
    with Store.open(cfg.store) as s:
        s.put(dataclasses.replace(a, subject="AssertionError@test_calc.py:test_total"))
    agit.run_git(repo, "apply", "--index", "-", input_text=patch.diff)
    git(repo, "commit", "-q", "-m", "fix total")
    with Store.open(cfg.store) as s:
        record_run(s, agit.head_commit(repo), green())
    (rec,) = track(cfg, tmp_path).records
    assert rec.outcome == "success", rec.insights
    assert (rec.before["failure_rate"], rec.after["failure_rate"]) == (1.0, 0.0)


def test_production_subject_is_judged_on_telemetry_windows_around_the_fix(
    make_repo: Any, tmp_path: Path
) -> None:
    from agent.records import TelemetryMetrics

    repo = project(make_repo)
    cfg = config(repo)
    patch = dataclasses.replace(make_patch(repo), strategy="memoise")
    agit.run_git(repo, "apply", "--index", "-", input_text=patch.diff)
    git(repo, "commit", "-q", "-m", "speed up checkout")
    fixed_ns = int(git(repo, "show", "-s", "--format=%ct", "HEAD").strip()) * 10**9

    def window(start: int, p50_ms: float, errors: int) -> TelemetryMetrics:
        ns = p50_ms * 1e6
        return TelemetryMetrics(
            "shop",
            "checkout",
            "1",
            100,
            errors,
            ns,
            ns,
            ns,
            ns,
            int(ns),
            int(ns),
            start,
            start + 60 * 10**9,
        )

    with Store.open(cfg.store) as s:
        run = s.begin_run("ingest")
        s.insert_metrics(
            run, [window(fixed_ns - 600 * 10**9, 90.0, 30), window(fixed_ns + 60 * 10**9, 20.0, 0)]
        )
        a = dataclasses.replace(
            anomaly(),
            kind=AnomalyKind.PERFORMANCE,
            subtype="latency",
            subject="shop/checkout",
            tests=(),
            run_id=run,
            detected_ns=fixed_ns - 500 * 10**9,
        )
        s.put(a, subject=a.subject)
        s.put(patch)
        s.put(validated(patch), subject=patch.id)
    (rec,) = track(cfg, tmp_path).records
    assert (rec.before["duration_ms"], rec.after["duration_ms"]) == (90.0, 20.0)
    assert (rec.before["error_rate"], rec.after["error_rate"]) == (0.3, 0.0)
    assert rec.outcome == "success" and round(rec.performance_improvement, 3) == 0.778
