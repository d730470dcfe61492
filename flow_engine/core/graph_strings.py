"""Strings no store keeps: a graph with a NUL character or a lone surrogate (a JSON "\\ud800" escape)
anywhere, in a value or a key, is refused with each place named. PostgreSQL's JSONB and UTF-8 cannot
hold them, so such a graph would pass validation and then fail `flows load` or a run."""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\\ud800-\\udfff]")


def _problem(text: str) -> str | None:
    if "\x00" in text:
        return "holds a NUL character (\\u0000)"
    if not text.isascii() and _SURROGATE.search(text):
        return "holds a lone surrogate (an unpaired \\ud800-\\udfff escape)"
    return None


def _child(where: str, key: str) -> str:
    if where:
        return f"{where}.{key}"
    return key if key in ("nodes", "paths") else f"graph.{key}"  # the top level: where validate names them


def string_problems(graph: Any) -> list[str]:
    """Every string of `graph` that no store can keep, in document order (walked with a stack, so a
    deep graph cannot overflow Python's)."""
    problems: list[str] = []
    stack: list[tuple[str, Any]] = [("", graph)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if (what := _problem(value)) is not None:
                problems.append(f"{where or 'graph'}: {what}")
        elif isinstance(value, dict):
            children: list[tuple[str, Any]] = []
            for key, child in value.items():
                if (what := _problem(key)) is not None:
                    problems.append(f"{where or 'graph'}: a key {what}")
                else:
                    children.append((_child(where, key), child))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{where}[{index}]", child) for index, child in enumerate(value)]))
    return problems
