"""The adapters import the core and plain modules, never a shell; the package never imports its
tests or benchmarks (as tests/test_core_purity.py checks the core's own rule)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

# What the adapters may import of the engine besides flow_engine.core and flow_engine.adapters.
PLAIN_MODULES = {"flow_engine.settings", "flow_engine.errors", "flow_engine.clock"}


def imports(root: Path) -> Iterator[tuple[str, str]]:
    """(file, imported module) of every import statement below `root`, those inside functions too."""
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names
                                         if node.module == "flow_engine"]
            else:
                continue
            for name in names:
                yield str(path.relative_to(REPO)), name


def allowed_in_adapters(name: str) -> bool:
    if name == "flow_engine":
        return True  # `from flow_engine import x`: x is checked as flow_engine.x
    if name.split(".")[0] == "bridge":
        return False
    if not name.startswith("flow_engine."):
        return True  # the standard library and third-party packages: the adapters do the I/O
    return name.startswith(("flow_engine.core", "flow_engine.adapters")) or name in PLAIN_MODULES


def test_adapters_import_only_the_core_adapters_and_plain_modules() -> None:
    offending = [f"{path} imports {name}" for path, name in imports(REPO / "flow_engine" / "adapters")
                 if not allowed_in_adapters(name)]
    assert offending == []


def test_the_package_imports_neither_its_tests_nor_its_benchmarks() -> None:
    offending = [f"{path} imports {name}" for root in ("flow_engine", "bridge") for path, name in imports(REPO / root)
                 if name.split(".")[0] in ("tests", "bench")]
    assert offending == []
