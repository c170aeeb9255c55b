"""A real installed distribution (dist-info with entry_points.txt) offering selfheal handlers."""

from __future__ import annotations

import textwrap
from pathlib import Path


def install_handlers(site: Path, module: str, entry: str, body: str) -> None:
    """`module` on the path entry `site`, its HANDLERS under the `selfheal.handlers` group."""
    site.mkdir()
    (site / f"{module}.py").write_text(textwrap.dedent(body), encoding="utf-8")
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n",
        encoding="utf-8",
    )
    (info / "entry_points.txt").write_text(
        f"[selfheal.handlers]\n{entry} = {module}:HANDLERS\n", encoding="utf-8"
    )
