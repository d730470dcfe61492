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
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

MAX_DURATION_MS = 366 * 86_400_000  # a year: longer pauses are mistakes (and would overflow)


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


def text_field(raw: Mapping[str, Any], name: str) -> str | None:
    """`raw[name]` when it is a non-empty string (a step's required name or key), else None."""
    value = raw.get(name)
    return value if isinstance(value, str) and value else None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def duration_ms(raw: Mapping[str, Any], where: str, names: tuple[str, ...], context: ParseContext) -> int | None:
    """Milliseconds from the first present alias; `ms` is exact, seconds may be fractional."""
    present = [name for name in names if name in raw]
    if not present:
        return None
    if len(present) > 1:
        context.problem(where, "give only one of " + ", ".join(f'"{n}"' for n in present))
    name = present[0]
    value = raw[name]
    if not is_number(value) or value < 0:
        context.problem(f"{where}.{name}", f"must be a non-negative number, got {json.dumps(value)}")
        return None
    exact: float = value if name == "ms" else value * 1000
    if exact > MAX_DURATION_MS:
        context.problem(f"{where}.{name}", f"must be at most {MAX_DURATION_MS // 1000} seconds (a year)")
        return None
    return round(exact)


class NoJumps:
    """For step types that only ever continue at the next step, or stop: they name no other path."""

    def jumps(self) -> tuple[tuple[str, str], ...]:
        return ()


@dataclass(frozen=True)
class Invalid(NoJumps):
    """A step that failed validation; reaching it at run time fails the run."""

    problem: str
    falls_through = False

    def run(self, execution: Any, path: str, index: int) -> Any:
        return execution.fail(f"{path}:{index}", self.problem)

    def describe(self) -> str:
        return f"invalid: {self.problem}"
