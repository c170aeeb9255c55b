"""pytest-selfheal's pytest plugin: records test runs, detects regressions and heals them."""

from __future__ import annotations
