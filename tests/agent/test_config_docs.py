"""The README's configuration table lists every key `[tool.selfheal]` accepts, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from agent import config

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_keys() -> list[str]:
    text = README.read_text(encoding="utf-8")
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)


def test_every_setting_is_in_the_readme_table() -> None:
    keys = documented_keys()
    assert sorted(keys) == sorted(config._KEYS), "README configuration table is out of date"
    assert len(keys) == len(set(keys))


def test_documented_defaults_match_the_code() -> None:
    text = README.read_text(encoding="utf-8")
    defaults = config.Config()
    for key in config._KEYS:
        value = getattr(defaults, key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert f"| `{key}` | {value} |" in text, key
        elif isinstance(value, str) and value:
            assert f"| `{key}` | `{value}` |" in text, key
