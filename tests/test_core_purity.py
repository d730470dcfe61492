"""The core is pure: it imports no I/O module, so the interpreter can be replayed and simulated."""

from __future__ import annotations

import ast

from tests.conftest import REPO

# zoneinfo reads the zone database shipped as the pinned `tzdata` package: data, not I/O with the world.
ALLOWED = {"__future__", "collections", "dataclasses", "datetime", "functools", "hashlib", "json", "math", "re", "re2",
           "typing", "unicodedata", "zoneinfo", "flow_engine"}


def test_core_imports_only_pure_modules() -> None:
    offending = []
    for path in sorted((REPO / "flow_engine" / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in ALLOWED or (top == "flow_engine" and not name.startswith("flow_engine.core")):
                    offending.append(f"{path.relative_to(REPO)} imports {name}")
    assert offending == []
