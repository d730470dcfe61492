"""Shared test helpers. Redis and PostgreSQL fixtures live in the runtime tests' conftest."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLE_FLOWS = REPO / "examples" / "flows"
