"""Registry: builtin phases imported on need, entry points only when needed, no shadowing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.conductor import check_directory
from agent.errors import SequenceError
from agent.handlers import (
    BUILTIN_PHASES,
    HandlerSet,
    PhaseRegistry,
    Registry,
    builtin_handlers,
    default_registry,
    phase_handlers,
)
from sequences import SEQUENCE_DIR
from tests.agent.entrypoint_kit import install_handlers

INDEX = json.loads((SEQUENCE_DIR / "index.json").read_text(encoding="utf-8"))


def bundled_phases() -> set[str]:
    files = [SEQUENCE_DIR / name for name in INDEX["sequences"]]
    return {json.loads(path.read_text(encoding="utf-8"))["phase"] for path in files}


def test_every_bundled_phase_has_one_registry_line_and_its_own_handlers() -> None:
    assert set(BUILTIN_PHASES) == bundled_phases()
    for phase, module in BUILTIN_PHASES.items():
        assert {h.phase for h in phase_handlers(phase, module)} == {phase}
    handlers = builtin_handlers()
    assert len(Registry(handlers)) == len(handlers)  # no name declared by two phases


def test_a_phase_module_without_its_handler_set_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "wrong_phase.py").write_text(
        "from agent.handlers import HandlerSet\nHANDLERS = HandlerSet('other')\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SequenceError, match=r"wrong_phase.HANDLERS is not the HandlerSet of phase"):
        phase_handlers("mine", "wrong_phase")


def test_a_sequence_phase_loads_only_that_phase() -> None:
    registry = PhaseRegistry()
    assert registry.loaded_phases == []
    handler = registry.get("loadLogFiles", "telemetry")
    assert handler is not None and handler.phase == "telemetry"
    assert registry.loaded_phases == ["telemetry"]
    assert registry.get("loadTelemetryData", "anomaly") is not None
    assert registry.loaded_phases == ["telemetry", "anomaly"]


def test_a_beat_of_another_phase_is_still_found() -> None:
    registry = PhaseRegistry()
    handler = registry.get("loadLogFiles", "custom")  # a user's sequence reusing our beat
    assert handler is not None and handler.phase == "telemetry"
    assert registry.loaded_phases == list(BUILTIN_PHASES)
    assert registry.get("noSuchHandler", "telemetry") is None


def test_default_registry_loads_nothing_until_asked() -> None:
    registry = default_registry()
    assert isinstance(registry, PhaseRegistry) and registry.loaded_phases == []
    assert len(registry) == len(builtin_handlers())  # a full listing loads everything
    assert registry.names() == sorted(h.name for h in builtin_handlers())


# Entry points: a real installed distribution on a path entry -------------------------------


def install_plugin(site: Path, body: str) -> None:
    install_handlers(site, "extra_beats", "extra", body)


CLASHING = """
    from agent.handlers import HandlerSet

    HANDLERS = HandlerSet("extra")

    @HANDLERS.beat("loadLogFiles", "stage-crew")  # a builtin name
    def mine(baton, ctx):
        return baton

    @HANDLERS.beat("countWidgets", "pure")
    def count(baton, ctx):
        return baton
    """


@pytest.fixture
def clashing_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    install_plugin(tmp_path / "site", CLASHING)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "extra_beats", raising=False)
    return tmp_path / "site"


def test_entry_points_are_not_read_while_builtins_suffice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path / "site", "raise ImportError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "extra_beats", raising=False)
    registry = PhaseRegistry()
    assert registry.get("loadLogFiles", "telemetry") is not None  # the entry point was not read
    with pytest.raises(SequenceError, match=r"entry point extra \(extra_beats:HANDLERS\) failed"):
        registry.get("countWidgets", "extra")
    with pytest.raises(SequenceError, match="failed to load"):  # every later need, alike
        registry.get("countWidgetsAgain", "extra")


def test_a_reused_builtin_name_never_shadows_and_is_an_error_when_read(
    clashing_plugin: Path,
) -> None:
    registry = PhaseRegistry()
    builtin = registry.get("loadLogFiles", "telemetry")
    assert builtin is not None and builtin.phase == "telemetry"
    with pytest.raises(SequenceError) as info:
        registry.get("countWidgets", "extra")
    assert str(info.value) == (
        "entry point extra (extra_beats:HANDLERS): handler 'loadLogFiles' is already "
        "registered by builtin phase telemetry"
    )
    assert registry.get("loadLogFiles", "telemetry") is builtin


def test_sequences_check_reports_a_reused_builtin_name(clashing_plugin: Path) -> None:
    with pytest.raises(SequenceError) as info:
        check_directory(None)
    lines = str(info.value).splitlines()
    assert lines == [
        "entry point extra (extra_beats:HANDLERS): handler 'loadLogFiles' is already "
        "registered by builtin phase telemetry"
    ]


def test_two_entry_points_with_one_name_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = """
        from agent.handlers import HandlerSet

        HANDLERS = HandlerSet("extra")

        @HANDLERS.beat("countWidgets", "pure")
        def count(baton, ctx):
            return baton

        @HANDLERS.beat("countWidgets", "pure")
        def count_again(baton, ctx):
            return baton
        """
    install_plugin(tmp_path / "site", body)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "extra_beats", raising=False)
    with pytest.raises(SequenceError, match="'countWidgets' is already registered by entry point"):
        PhaseRegistry().load_all()


def test_an_explicit_registry_ignores_the_phase_hint() -> None:
    beats = HandlerSet("custom")

    @beats.beat("onlyStep", "pure")
    def only(baton: object, ctx: object) -> object:
        return baton

    registry = Registry(beats)
    handler = registry.get("onlyStep", "telemetry")
    assert handler is not None and handler.phase == "custom"
    assert registry.get("loadLogFiles", "telemetry") is None


def test_the_cli_check_names_the_reused_name_in_one_line(clashing_plugin: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFHEAL_")}
    env["PYTHONPATH"] = str(clashing_plugin)
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "sequences", "check"],
        cwd=clashing_plugin,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "selfheal: error: entry point extra (extra_beats:HANDLERS): handler 'loadLogFiles' is "
        "already registered by builtin phase telemetry"
    ]
