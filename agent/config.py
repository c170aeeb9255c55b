"""Settings from `[tool.selfheal]` in pyproject.toml and SELFHEAL_* environment variables."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

STORE_ENV = "SELFHEAL_STORE"
DEFAULT_STORE = ".selfheal/selfheal.db"

DEPLOY_MODES = ("off", "propose", "pr", "merge")
COVERAGE_MODES = ("auto", "always", "never")
SELECTION_MODES = ("affected", "full")
PR_PROVIDERS = ("auto", "gh", "github", "glab")


@dataclass(frozen=True)
class Config:
    """Every setting, with its default; paths are absolute once loaded."""

    root: Path = Path(".")
    store: Path = Path(DEFAULT_STORE)
    sequences: Path | None = None  # a user directory of sequence files, replacing ours
    # Detection
    perf_ratio: float = 1.25  # median ratio that counts as a slowdown
    perf_floor_ms: float = 5.0  # absolute growth below this is timer noise
    perf_alpha: float = 0.05  # family-wise error rate across all tests compared
    perf_reruns: int = 5  # confirming re-runs of suspect tests
    history: int = 20  # baseline runs kept per test
    raw_test_runs: int = 50  # test runs whose raw spans are kept (0: all); history stays
    error_min_count: int = 5  # error-rate spikes need at least this many errors
    coverage: str = "auto"
    # Healing
    budget_s: float = 120.0
    validation_selection: str = "affected"
    validation_repeats: int = 3
    validation_timeout_s: float = 300.0
    allow_paths: tuple[str, ...] = ()  # empty = anywhere inside the repository
    max_patch_bytes: int = 200_000
    max_patch_files: int = 20
    max_patch_hunks: int = 50
    # Delivery
    deploy: str = "propose"
    min_confidence: float = 0.5
    max_open_proposals: int = 5
    ci_command: str = ""
    deploy_command: str = ""
    verify_command: str = ""
    # Optional model-backed fix generator (OpenAI-compatible); off when empty.
    llm_url: str = ""
    llm_model: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys we do not know, kept for plugins
    # Delivery details (issue 6): merge size cap, where proposals go, which PR provider.
    max_merge_lines: int = 60  # changed lines above which `merge` only proposes
    target_branch: str = ""  # empty = the branch checked out when the patch was validated
    deploy_remote: str = "origin"
    pr_provider: str = "auto"  # auto | gh | github | glab
    github_api_url: str = "https://api.github.com"
    github_repo: str = ""  # owner/name; empty = read from the remote's URL
    # The agent (issue 8): watch debounce, telemetry windows, receiver port, plugin hand-off.
    agent_debounce_ms: float = 300.0
    agent_window_s: float = 60.0  # detection runs on each closed window of received spans
    agent_otlp_port: int = 4318  # 0 = any free port, -1 = no receiver
    agent_handoff: str = "auto"  # auto: `pytest --selfheal` hands anomalies to a running agent
    agent_queue: int = 100  # anomalies waiting for healing; beyond this they are dropped

    @property
    def selfheal_dir(self) -> Path:
        return self.root / ".selfheal"


_KEYS: dict[str, type[Any]] = {
    "store": str,
    "sequences": str,
    "perf_ratio": float,
    "perf_floor_ms": float,
    "perf_alpha": float,
    "perf_reruns": int,
    "history": int,
    "raw_test_runs": int,
    "error_min_count": int,
    "coverage": str,
    "budget_s": float,
    "validation_selection": str,
    "validation_repeats": int,
    "validation_timeout_s": float,
    "allow_paths": list,
    "max_patch_bytes": int,
    "max_patch_files": int,
    "max_patch_hunks": int,
    "deploy": str,
    "min_confidence": float,
    "max_open_proposals": int,
    "ci_command": str,
    "deploy_command": str,
    "verify_command": str,
    "llm_url": str,
    "llm_model": str,
    "max_merge_lines": int,
    "target_branch": str,
    "deploy_remote": str,
    "pr_provider": str,
    "github_api_url": str,
    "github_repo": str,
    "agent_debounce_ms": float,
    "agent_window_s": float,
    "agent_otlp_port": int,
    "agent_handoff": str,
    "agent_queue": int,
}

_CHOICES = {
    "deploy": DEPLOY_MODES,
    "coverage": COVERAGE_MODES,
    "validation_selection": SELECTION_MODES,
    "pr_provider": PR_PROVIDERS,
    "agent_handoff": ("auto", "off"),
}


def find_root(start: Path) -> Path:
    """The nearest directory at or above `start` holding pyproject.toml or .git, else `start`."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / "pyproject.toml").is_file() or (candidate / ".git").exists():
            return candidate
    return start


def load_config(root: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read `[tool.selfheal]` under `root`, then the environment, then explicit overrides."""
    root = (root or find_root(Path.cwd())).resolve()
    table = _read_table(root / "pyproject.toml")
    values = {**table, **_env_values(), **(overrides or {})}
    return build_config(root, values, source=str(root / "pyproject.toml"))


def build_config(root: Path, values: Mapping[str, Any], source: str) -> Config:
    """Check and convert raw values; a bad one is a ConfigError naming key and source."""
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, raw in values.items():
        norm = key.replace("-", "_")
        if norm not in _KEYS:
            extra[key] = raw
            continue
        known[norm] = _convert(norm, raw, source)
    store = Path(known.pop("store", DEFAULT_STORE))
    seq = known.pop("sequences", None)
    allow = tuple(known.pop("allow_paths", ()))
    return dataclasses.replace(
        Config(),
        root=root,
        store=store if store.is_absolute() else root / store,
        sequences=None if seq is None else (root / seq).resolve(),
        allow_paths=allow,
        extra=extra,
        **known,
    )


def _convert(key: str, raw: Any, source: str) -> Any:
    kind = _KEYS[key]
    try:
        if kind is list:
            if isinstance(raw, str):
                raw = [p.strip() for p in raw.split(",") if p.strip()]
            if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
                raise ValueError("expected a list of strings")
            value: Any = list(raw)
        elif kind is float:
            if isinstance(raw, bool):
                raise ValueError("expected a number")
            value = float(raw)
        elif kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError("expected an integer")
            value = int(raw)
        else:
            if not isinstance(raw, str):
                raise ValueError("expected a string")
            value = raw
    except ValueError as exc:
        raise ConfigError(f"{source}: selfheal setting {key}={raw!r}: {exc}") from None
    choices = _CHOICES.get(key)
    if choices and value not in choices:
        raise ConfigError(
            f"{source}: selfheal setting {key}={raw!r}: expected one of {', '.join(choices)}"
        )
    return value


def _read_table(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("selfheal", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.selfheal] must be a table")
    return table


def _env_values() -> dict[str, Any]:
    """SELFHEAL_<KEY> for every known key; SELFHEAL_STORE is the documented one."""
    values: dict[str, Any] = {}
    for key in _KEYS:
        raw = os.environ.get(f"SELFHEAL_{key.upper()}")
        if raw is not None:
            values[key] = raw
    return values
