"""`{"type": "goto", "path": P}`: continue at the first step of `path`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.steps.base import ParseContext, path_field


@dataclass(frozen=True)
class Goto:
    path: str
    falls_through = False

    def run(self, execution: Any, path: str, index: int) -> str:
        execution.jumped(path, index, "goto", self.path)
        return self.path

    def describe(self) -> str:
        return f"goto {self.path}"

    def jumps(self) -> tuple[tuple[str, str], ...]:
        return (("goto", self.path),)

    def loop_problem(self, target: str) -> str:
        return f"goto {json.dumps(target, ensure_ascii=False)} loops without waiting for the contact"


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> Goto | None:
    path = path_field(raw, "path", where, context)
    return None if path is None else Goto(path)
