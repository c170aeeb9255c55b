"""Tests of pytest-selfheal (a package, so conftest and helper names never clash)."""
