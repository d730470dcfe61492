"""What a step type module provides, so that adding a step type is one module plus its fixtures.

A step type module (`flow_engine/core/steps/<name>.py`, registered in `steps/__init__.py`) has
`parse(raw, where, context) -> step`; the step object it returns has
- `run(execution, path, index)`: what it does, and where the run goes next (`NEXT`, `END`, or a path),
- `describe()`: its one-line label (simulator, Mermaid),
- `jumps()`: the paths it may jump to, labelled (Mermaid edges, the static loop check),
- `falls_through`: whether the run may continue at the next step after it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Protocol


class ParseContext(Protocol):
    """The parser as a step type sees it: where to report problems, which paths exist."""

    path_names: set[str]
    problems: list[str]

    def problem(self, where: str, what: str) -> str: ...


class _End:
    def __repr__(self) -> str:
        return "END"


NEXT: Final = None  # continue with the next step
END: Final = _End()  # the run completes here
Next = str | _End | None  # a path name: continue at its first step


def path_field(raw: Mapping[str, Any], name: str, where: str, context: ParseContext) -> str | None:
    """A field naming an existing path, else a located problem and None."""
    value = raw.get(name)
    if name not in raw:
        context.problem(f"{where}.{name}", "required (a path name)")
        return None
    if not isinstance(value, str) or value not in context.path_names:
        context.problem(f"{where}.{name}", f"path {json.dumps(value, ensure_ascii=False)} does not exist")
        return None
    return value
