"""Shared test helpers. Redis and PostgreSQL fixtures live in the runtime tests' conftest."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLE_FLOWS = REPO / "examples" / "flows"

# What `flow-engine validate` must report for examples/flows/broken.json, in order.
BROKEN_PROBLEMS = [
    'nodes[0].map.pricing: path "missing_path" does not exist',
    'paths.main[0]: send_text requires "text" (a string)',
    'paths.main[1]: unknown step type "escalate"',
    'paths.main[2].pattern: invalid regex "([a-z]+": missing ): ([a-z]+',
    "paths.main[2].seconds: must be a non-negative number, got -5",
    'paths.main[3]: delay requires a duration: one of "seconds", "sec", "ms"',
]
