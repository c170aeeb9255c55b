"""The seven phase sequences (JSON) and their JSON Schema, shipped as package data."""

from __future__ import annotations

from pathlib import Path

SEQUENCE_DIR = Path(__file__).resolve().parent
