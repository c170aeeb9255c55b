"""pytest-selfheal's engine: records, store, conductor, the seven phases and the agent."""

from __future__ import annotations

__version__ = "0.1.0"
