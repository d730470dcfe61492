"""Step types as modules: each `parse`s its raw step into an object that runs, describes itself and
names its jumps. Adding a step type is one module here, one line in STEP_TYPES, and its fixtures
(tests/fixtures/runs/<name>*.json, tests/fixtures/invalid/...)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flow_engine.core.steps import branch, end, goto, split
from flow_engine.core.steps.base import END, NEXT, Next, ParseContext

Parse = Callable[[Mapping[str, Any], str, ParseContext], Any]

STEP_TYPES: Mapping[str, Parse] = {
    "branch": branch.parse,
    "goto": goto.parse,
    "end": end.parse,
    "split": split.parse,
}

__all__ = ["END", "NEXT", "STEP_TYPES", "Next", "ParseContext"]
