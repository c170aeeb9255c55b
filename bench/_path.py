"""Imported first by every benchmark: takes bench/ off sys.path so bench/agent.py cannot shadow
the `agent` package, and puts the checkout's root first so the benchmarks measure this tree.

`python bench/X.py` puts bench/ at sys.path[0]; that is also how `import _path` finds this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if "agent" in sys.modules and not getattr(sys.modules["agent"], "__path__", None):
    # Something imported bench/agent.py as `agent` before us: forget it.
    del sys.modules["agent"]
