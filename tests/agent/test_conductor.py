"""Conductor: every bundled sequence loads; bad files are one line each; policies; nesting."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.conductor import BeatContext, Conductor, check_directory, load_sequences
from agent.config import Config
from agent.errors import BeatError, SequenceError
from agent.handlers import HandlerSet, Registry, default_registry, plugin_handlers
from agent.records import EventSource, SpanStatus
from agent.store import Store
from sequences import SEQUENCE_DIR
from tests.agent.entrypoint_kit import install_handlers

INDEX = json.loads((SEQUENCE_DIR / "index.json").read_text(encoding="utf-8"))


@dataclasses.dataclass(frozen=True)
class Trail:
    """A small typed baton: the handlers it went through."""

    steps: tuple[str, ...] = ()

    def add(self, step: str) -> Trail:
        return Trail((*self.steps, step))


def make_registry(fail: Callable[[], None] | None = None) -> Registry:
    beats = HandlerSet("custom")

    @beats.beat("firstStep", "pure")
    def first(baton: Trail, ctx: BeatContext) -> Trail:
        return baton.add("first")

    @beats.beat("flakyStep", "pure")
    def flaky(baton: Trail, ctx: BeatContext) -> Trail:
        if fail is not None:
            fail()
        return baton.add("flaky")

    @beats.beat("lastStep", "stage-crew")
    def last(baton: Trail, ctx: BeatContext) -> Trail:
        return baton.add(f"last:{ctx.store.path.name}")

    @beats.beat("nestedStep", "pure")
    def nested(baton: Trail, ctx: BeatContext) -> Trail:
        inner: Trail = ctx.play("inner.seq", baton.add("outer"))
        return inner

    @beats.beat("touchStore", "pure")
    def touch(baton: Trail, ctx: BeatContext) -> Trail:
        ctx.store  # noqa: B018 - the access itself must fail for a pure beat
        return baton

    return Registry(beats)


WORDS = {1: "one", 2: "two", 3: "three"}  # event names allow letters and dashes only


def beat(number: int, handler: str, kind: str = "pure", **extra: Any) -> dict[str, Any]:
    return {
        "beat": number,
        "event": f"selfheal:custom:run:{handler.lower()}-{WORDS[number]}",
        "title": f"step {number}",
        "handler": handler,
        "kind": kind,
        "timing": {"maxSeconds": 5},
        **extra,
    }


def write_sequences(directory: Path, sequences: dict[str, list[dict[str, Any]]]) -> Path:
    """A sequence directory: index.json plus one file per sequence id."""
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for seq_id, beats in sequences.items():
        name = f"{seq_id}.json"
        doc = {
            "id": seq_id,
            "name": seq_id,
            "phase": "custom",
            "movements": [{"name": "run", "beats": beats}],
        }
        (directory / name).write_text(json.dumps(doc), encoding="utf-8")
        names.append(name)
    index = {"version": 1, "sequences": names, "pipeline": []}
    (directory / "index.json").write_text(json.dumps(index), encoding="utf-8")
    return directory


def config_for(tmp_path: Path) -> Config:
    return Config(root=tmp_path, store=tmp_path / ".selfheal" / "selfheal.db")


# Every bundled sequence --------------------------------------------------------------------


@pytest.mark.parametrize("name", INDEX["sequences"])
def test_bundled_sequence_loads_and_maps_every_beat(name: str) -> None:
    registry = default_registry()
    raw = json.loads((SEQUENCE_DIR / name).read_text(encoding="utf-8"))
    loaded = {s.file.name: s for s in load_sequences(registry=registry).values()}
    seq = loaded[name]
    raw_beats = [b for m in raw["movements"] for b in m["beats"]]
    assert [b.number for b in seq.beats] == [b["beat"] for b in raw_beats]
    for raw_beat, loaded_beat in zip(raw_beats, seq.beats, strict=True):
        handler = registry.get(raw_beat["handler"])
        assert handler is not None, f"{name}: {raw_beat['handler']} is not registered"
        assert handler.kind.value == raw_beat["kind"]
        assert loaded_beat.handler is handler
        assert handler.phase == raw["phase"]


def test_index_pipeline_names_loaded_sequences() -> None:
    ids = set(load_sequences())
    assert INDEX["pipeline"][0] == "telemetry.parse"
    assert set(INDEX["pipeline"]) <= ids


# Bad sequence files: one line each, naming file and beat ---------------------------------


def one_problem(directory: Path, registry: Registry) -> str:
    with pytest.raises(SequenceError) as info:
        load_sequences(directory, registry)
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_invalid_json_is_one_line_naming_the_file(tmp_path: Path) -> None:
    directory = write_sequences(tmp_path / "seq", {"custom.seq": [beat(1, "firstStep")]})
    (directory / "custom.seq.json").write_text('{"id": "custom.seq",', encoding="utf-8")
    line = one_problem(directory, make_registry())
    assert line.startswith(f"{directory / 'custom.seq.json'}: invalid JSON")


@pytest.mark.parametrize(
    ("beats", "expected"),
    [
        ([beat(1, "noSuchHandler")], "beat 1 (noSuchHandler): unknown handler 'noSuchHandler'"),
        (
            [beat(1, "firstStep"), beat(2, "lastStep", "stage-crew"), beat(2, "flakyStep")],
            "beat 2 (flakyStep): duplicate beat number",
        ),
        ([beat(1, "lastStep", "pure")], "beat 1 (lastStep): kind 'pure' but the handler is"),
        (
            [beat(2, "firstStep"), beat(1, "flakyStep")],
            "beat 1 (flakyStep): beat numbers must increase",
        ),
        ([{**beat(1, "firstStep"), "timing": "fast"}], "beat 1: 'fast' is not of type 'object'"),
    ],
    ids=["unknown-handler", "duplicate-beat", "wrong-kind", "out-of-order", "schema"],
)
def test_bad_beat_is_one_line_naming_file_and_beat(
    tmp_path: Path, beats: list[dict[str, Any]], expected: str
) -> None:
    directory = write_sequences(tmp_path / "seq", {"custom.seq": beats})
    line = one_problem(directory, make_registry())
    assert line.startswith(f"{directory / 'custom.seq.json'}: ")
    assert expected in line


def test_every_problem_is_reported_before_anything_runs(tmp_path: Path) -> None:
    directory = write_sequences(
        tmp_path / "seq",
        {
            "custom.one": [beat(1, "firstStep"), beat(2, "nope"), beat(3, "lastStep", "pure")],
            "custom.two": [beat(1, "lastStep", "pure")],
        },
    )
    with pytest.raises(SequenceError) as info:  # the full check: every file
        load_sequences(directory, make_registry())
    assert len(str(info.value).splitlines()) == 3
    # A play: every problem of that sequence, before its first beat runs.
    with Conductor(config_for(tmp_path), registry=make_registry(), sequences_dir=directory) as cond:
        with pytest.raises(SequenceError) as info:
            cond.play("custom.one", Trail())
        lines = str(info.value).splitlines()
        assert len(lines) == 2
        assert all(line.startswith(f"{directory / 'custom.one.json'}: beat ") for line in lines)
        assert cond.beat_spans == []


def test_schema_pass_is_cached_by_content_and_a_changed_file_is_checked_again(
    tmp_path: Path,
) -> None:
    directory = write_sequences(tmp_path / "seq", {"custom.seq": [beat(1, "firstStep")]})
    cache = tmp_path / "checked"
    assert set(load_sequences(directory, make_registry(), checked_cache=cache)) == {"custom.seq"}
    digests = cache.read_text(encoding="utf-8").split()
    assert len(digests) == 1 and len(digests[0]) == 64
    # Same content, cached: loads again without rewriting the cache.
    before = cache.stat().st_mtime_ns
    assert set(load_sequences(directory, make_registry(), checked_cache=cache)) == {"custom.seq"}
    assert cache.stat().st_mtime_ns == before
    # A schema error in a changed file is still found, one line naming the beat.
    write_sequences(directory, {"custom.seq": [{**beat(1, "firstStep"), "timing": "fast"}]})
    with pytest.raises(SequenceError) as info:
        load_sequences(directory, make_registry(), checked_cache=cache)
    assert "beat 1: 'fast' is not of type 'object'" in str(info.value)
    assert cache.read_text(encoding="utf-8").split() == digests


def test_conductor_keeps_its_schema_cache_beside_the_store(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    directory = write_sequences(tmp_path / "seq", {"custom.seq": [beat(1, "firstStep")]})
    with Conductor(config, registry=make_registry(), sequences_dir=directory) as cond:
        cond.play("custom.seq", Trail())
    assert not config.store.parent.exists()  # never creates the store directory for it
    config.store.parent.mkdir()
    with Conductor(config, registry=make_registry(), sequences_dir=directory) as cond:
        assert not (config.store.parent / "selfheal.db.sequences-checked").exists()  # lazy
        cond.play("custom.seq", Trail())
    assert (config.store.parent / "selfheal.db.sequences-checked").is_file()


# Playing -----------------------------------------------------------------------------------


def play(tmp_path: Path, beats: list[dict[str, Any]], fail: Callable[[], None] | None) -> Any:
    directory = write_sequences(tmp_path / "seq", {"custom.seq": beats})
    registry = make_registry(fail)
    with Conductor(config_for(tmp_path), registry=registry, sequences_dir=directory) as cond:
        return cond.play("custom.seq", Trail())


def failing(times: int) -> tuple[Callable[[], None], list[int]]:
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        if len(calls) <= times:
            raise ValueError(f"boom {len(calls)}")

    return fail, calls


def test_beats_run_in_order_on_one_baton(tmp_path: Path) -> None:
    beats = [beat(1, "firstStep"), beat(2, "flakyStep"), beat(3, "lastStep", "stage-crew")]
    assert play(tmp_path, beats, None).steps == ("first", "flaky", "last:selfheal.db")


def test_abort_policy_stops_with_one_line_naming_sequence_and_beat(tmp_path: Path) -> None:
    fail, calls = failing(1)
    beats = [beat(1, "flakyStep"), beat(2, "lastStep", "stage-crew")]
    with pytest.raises(BeatError) as info:
        play(tmp_path, beats, fail)
    assert str(info.value) == "custom.seq beat 1 (flakyStep) failed: boom 1"
    assert len(calls) == 1


def test_continue_policy_passes_the_baton_on(tmp_path: Path) -> None:
    fail, calls = failing(5)
    beats = [
        beat(1, "firstStep"),
        beat(2, "flakyStep", onError={"policy": "continue"}),
        beat(3, "lastStep", "stage-crew"),
    ]
    assert play(tmp_path, beats, fail).steps == ("first", "last:selfheal.db")
    assert len(calls) == 1


def test_retry_policy_tries_again_then_gives_up(tmp_path: Path) -> None:
    fail, calls = failing(2)
    retry3 = [beat(1, "flakyStep", onError={"policy": "retry", "attempts": 3})]
    assert play(tmp_path, retry3, fail).steps == ("flaky",)
    assert len(calls) == 3
    fail, calls = failing(5)
    with pytest.raises(BeatError, match="boom 2"):
        play(tmp_path, [beat(1, "flakyStep", onError={"policy": "retry", "attempts": 2})], fail)
    assert len(calls) == 2


def test_pure_beat_may_not_touch_the_store(tmp_path: Path) -> None:
    with pytest.raises(BeatError, match="touchStore is a pure beat"):
        play(tmp_path, [beat(1, "touchStore")], None)


def test_nested_play_and_beat_spans_recorded_into_the_store(tmp_path: Path) -> None:
    directory = write_sequences(
        tmp_path / "seq",
        {
            "custom.seq": [beat(1, "firstStep"), beat(2, "nestedStep")],
            "inner.seq": [beat(1, "lastStep", "stage-crew")],
        },
    )
    config = config_for(tmp_path)
    Store.open(config.store).close()
    with Conductor(config, registry=make_registry(), sequences_dir=directory) as cond:
        result = cond.play("custom.seq", Trail())
    assert result.steps == ("first", "outer", "last:selfheal.db")
    with Store.open(config.store) as store:
        runs = store.conn.execute("SELECT id, kind, status FROM runs").fetchall()
        assert [(kind, status) for _, kind, status in runs] == [("pipeline", "ok")]
        events = store.events(runs[0][0])
    assert {e.source for e in events} == {EventSource.BEAT}
    by_name = {e.operation: e for e in events}
    assert set(by_name) == {
        "selfheal:custom:run:firststep-one",
        "selfheal:custom:run:nestedstep-two",
        "selfheal:custom:run:laststep-one",
        "sequence custom.seq",
        "sequence inner.seq",
    }
    inner = by_name["selfheal:custom:run:laststep-one"]
    assert inner.attributes["selfheal.sequence"] == "inner.seq"
    assert inner.attributes["selfheal.kind"] == "stage-crew"
    assert inner.attributes["selfheal.outcome"] == "ok"
    # the nested sequence's span is a child of the outer beat that played it
    assert (
        by_name["sequence inner.seq"].parent_span_id
        == by_name["selfheal:custom:run:nestedstep-two"].span_id
    )


def test_failed_beat_span_carries_the_error(tmp_path: Path) -> None:
    fail, _ = failing(1)
    directory = write_sequences(
        tmp_path / "seq", {"custom.seq": [beat(1, "flakyStep", onError={"policy": "continue"})]}
    )
    config = config_for(tmp_path)
    Store.open(config.store).close()
    with Conductor(config, registry=make_registry(fail), sequences_dir=directory) as cond:
        cond.play("custom.seq", Trail())
    with Store.open(config.store) as store:
        events = store.events(1)
    failed = next(e for e in events if e.operation.endswith("flakystep-one"))
    assert failed.status is SpanStatus.ERROR
    assert failed.exception_type == "ValueError"
    assert failed.attributes["selfheal.outcome"] == "error"


def test_user_directory_overlays_the_sequences(tmp_path: Path) -> None:
    base = write_sequences(
        tmp_path / "base", {"custom.seq": [beat(1, "firstStep"), beat(2, "flakyStep")]}
    )
    user = tmp_path / "mine"
    write_sequences(
        user, {"custom.seq": [beat(1, "flakyStep")], "extra.seq": [beat(1, "firstStep")]}
    )
    (user / "index.json").unlink()  # an overlay needs no index of its own
    config = dataclasses.replace(config_for(tmp_path), sequences=user)
    with Conductor(config, registry=make_registry(), sequences_dir=base) as cond:
        assert set(cond.sequences) == {"custom.seq", "extra.seq"}
        assert cond.play("custom.seq", Trail()).steps == ("flaky",)


def test_missing_overlay_directory_is_an_error(tmp_path: Path) -> None:
    base = write_sequences(tmp_path / "base", {"custom.seq": [beat(1, "firstStep")]})
    with pytest.raises(SequenceError, match="sequences directory does not exist"):
        load_sequences(base, make_registry(), overlay=tmp_path / "absent")


# Third-party beats through the selfheal.handlers entry-point group ------------------------


LOUD_BEATS = """
from agent.handlers import HandlerSet

HANDLERS = HandlerSet("custom")

@HANDLERS.beat("shoutSteps", "pure")
def shout(baton, ctx):
    return type(baton)(tuple(s.upper() for s in baton.steps))
"""


def install_plugin(site: Path) -> None:
    install_handlers(site, "loud_beats", "loud", LOUD_BEATS)


def test_handlers_from_an_installed_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert [h.name for h in plugin_handlers()] == ["shoutSteps"]
    registry = make_registry()
    for handler in plugin_handlers():
        registry.add(handler)
    directory = write_sequences(
        tmp_path / "seq", {"custom.seq": [beat(1, "firstStep"), beat(2, "shoutSteps")]}
    )
    with Conductor(config_for(tmp_path), registry=registry, sequences_dir=directory) as cond:
        assert cond.play("custom.seq", Trail()).steps == ("FIRST",)


def test_broken_entry_point_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path / "site")
    (tmp_path / "site" / "loud_beats.py").write_text("raise ImportError('no')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(__import__("sys").modules, "loud_beats", raising=False)
    with pytest.raises(SequenceError, match=r"entry point loud \(loud_beats:HANDLERS\) failed"):
        plugin_handlers()


def test_a_name_registered_twice_is_an_error() -> None:
    registry = make_registry()
    duplicate = HandlerSet("other")

    @duplicate.beat("firstStep", "pure")
    def again(baton: Trail, ctx: BeatContext) -> Trail:
        return baton

    with pytest.raises(SequenceError, match="registered twice"):
        for handler in duplicate:
            registry.add(handler)


def test_grouped_plays_are_one_pipeline_run(tmp_path: Path) -> None:
    directory = write_sequences(tmp_path / "seq", {"custom.seq": [beat(1, "firstStep")]})
    config = config_for(tmp_path)
    Store.open(config.store).close()
    with Conductor(config, registry=make_registry(), sequences_dir=directory) as cond:
        with cond.grouped():
            for _ in range(3):
                cond.play("custom.seq", Trail())
            assert len(cond.beat_spans) == 6  # held until the group ends
        assert cond.beat_spans == []
    with Store.open(config.store) as store:
        runs = store.conn.execute("SELECT id FROM runs WHERE kind = 'pipeline'").fetchall()
        assert len(runs) == 1 and len(store.events(runs[0][0])) == 6


# Laziness, proved in a fresh interpreter -------------------------------------------------

UNPLAYED_PHASES = ("diagnosis", "fix", "validation", "deployment")

PLAY_TELEMETRY = """
import json, sys
from pathlib import Path
from agent.conductor import Conductor
from agent.config import Config
from agent.records import EventSource, TelemetryEvent

root = Path(sys.argv[1])
phases = lambda: sorted(m for m in sys.modules if m.startswith("agent.phases."))
conductor = Conductor(Config(root=root, store=root / ".selfheal" / "selfheal.db"))
after_init = phases()
from agent.phases.telemetry import TelemetryRequest, ingest

event = TelemetryEvent(EventSource.TEST, "tests", "test_one", 1, 2_000_000)
with conductor:
    outcome = ingest(conductor, TelemetryRequest(events=(event,), run_kind="test", keep_raw=True))
seen = {"after_init": after_init, "after_play": phases(), "stored": outcome.stored_events}
print(json.dumps(seen))
"""


def test_constructing_and_playing_telemetry_imports_no_other_phase(tmp_path: Path) -> None:
    # A broken third-party entry point on the path: had the entry points been read, the
    # play would fail naming it.
    site = tmp_path / "site"
    install_plugin(site)
    (site / "loud_beats.py").write_text("raise ImportError('read')\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-c", PLAY_TELEMETRY, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["after_init"] == []
    assert seen["stored"] == 1
    loaded = {name.split(".")[2] for name in seen["after_play"]}
    assert "telemetry" in loaded
    assert not loaded & set(UNPLAYED_PHASES), loaded


GREEN_SUITE = {
    "test_fast.py": "def test_one():\n    assert 1\n\ndef test_two():\n    assert 2\n",
    "conftest.py": textwrap.dedent(
        """
        import json, os, sys

        def pytest_unconfigure(config):
            # After the plugin has played telemetry, anomaly and learning on this green run.
            with open(os.environ["MODULES_OUT"], "w", encoding="utf-8") as out:
                json.dump(sorted(m for m in sys.modules if m.startswith("agent.")), out)
        """
    ),
}


@pytest.mark.slow
def test_a_green_selfheal_run_imports_no_unplayed_phase(
    tmp_path: Path, make_repo: Callable[..., Path]
) -> None:
    repo = make_repo(GREEN_SUITE)
    out = tmp_path / "modules.json"
    args = ["-q", "-p", "no:cacheprovider", "--selfheal", "--selfheal-budget=0"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SELFHEAL_")}}
    env["MODULES_OUT"] = str(out)
    env["SELFHEAL_SIDECAR"] = "0"  # the pipeline in the test process, where the suite looks
    for _ in range(2):  # the second run has a baseline to compare with
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *args],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "2 tests recorded" in proc.stdout, proc.stdout
    modules = json.loads(out.read_text(encoding="utf-8"))
    assert "agent.phases.learning" in modules and "agent.phases.anomaly" in modules
    loaded = {name.split(".")[2] for name in modules if name.startswith("agent.phases.")}
    assert not loaded & set(UNPLAYED_PHASES), loaded


def test_a_broken_sequence_is_a_clear_error_when_played_and_nothing_before(
    tmp_path: Path,
) -> None:
    directory = write_sequences(
        tmp_path / "seq",
        {"custom.good": [beat(1, "firstStep")], "custom.bad": [beat(1, "firstStep")]},
    )
    (directory / "custom.bad.json").write_text('{"id": "custom.bad",', encoding="utf-8")
    with Conductor(config_for(tmp_path), registry=make_registry(), sequences_dir=directory) as cond:
        assert cond.play("custom.good", Trail()).steps == ("first",)  # unaffected
        with pytest.raises(SequenceError) as info:
            cond.play("custom.bad", Trail())
    lines = str(info.value).splitlines()
    assert lines[0] == "no sequence 'custom.bad' (known: custom.good)"
    assert lines[1].startswith(f"{directory / 'custom.bad.json'}: invalid JSON")
    with pytest.raises(SequenceError, match="invalid JSON"):
        load_sequences(directory, make_registry())


def test_a_bundled_sequence_broken_in_an_overlay_fails_its_play_and_the_check(
    tmp_path: Path,
) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    doc = json.loads((SEQUENCE_DIR / "fix.generate.json").read_text(encoding="utf-8"))
    doc["movements"][0]["beats"][0]["handler"] = "generateFixRequestedd"
    (user / "fix.generate.json").write_text(json.dumps(doc), encoding="utf-8")
    config = dataclasses.replace(config_for(tmp_path), sequences=user)
    with Conductor(config) as cond:
        assert cond.sequence("telemetry.parse").phase == "telemetry"
        with pytest.raises(SequenceError) as info:
            cond.play("fix.generate", None)
    expected = (
        f"{user / 'fix.generate.json'}: beat 1 (generateFixRequestedd): "
        "unknown handler 'generateFixRequestedd'"
    )
    assert str(info.value) == expected
    with pytest.raises(SequenceError) as info:
        check_directory(None, overlay=user)
    assert str(info.value) == expected


def test_a_sequence_is_resolved_once_and_a_duplicate_id_fails_its_play(tmp_path: Path) -> None:
    directory = write_sequences(tmp_path / "seq", {"custom.seq": [beat(1, "firstStep")]})
    with Conductor(config_for(tmp_path), registry=make_registry(), sequences_dir=directory) as cond:
        assert cond.sequence("custom.seq") is cond.sequence("custom.seq")
    copy = directory / "copy.json"
    copy.write_text((directory / "custom.seq.json").read_text(encoding="utf-8"), encoding="utf-8")
    index = json.loads((directory / "index.json").read_text(encoding="utf-8"))
    index["sequences"].append(copy.name)
    (directory / "index.json").write_text(json.dumps(index), encoding="utf-8")
    with (
        Conductor(config_for(tmp_path), registry=make_registry(), sequences_dir=directory) as cond,
        pytest.raises(SequenceError) as info,
    ):
        cond.play("custom.seq", Trail())
    original = directory / "custom.seq.json"
    assert str(info.value) == f"{copy}: sequence id 'custom.seq' also in {original}"
