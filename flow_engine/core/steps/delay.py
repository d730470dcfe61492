"""`{"type": "wait"}` / `{"type": "delay"}` with `seconds` | `sec` | `ms`: pause, then the next step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.steps.base import Invalid, NoJumps, ParseContext, duration_ms

DURATION_FIELDS = ("seconds", "sec", "ms")


@dataclass(frozen=True)
class Delay(NoJumps):
    ms: int
    falls_through = False  # it pauses

    def run(self, execution: Any, path: str, index: int) -> Any:
        return execution.pause(path, index, "delay", self.ms, None)

    def describe(self) -> str:
        return f"wait {self.ms / 1000:g} s"


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> Delay | Invalid:
    if not any(name in raw for name in DURATION_FIELDS):
        return Invalid(context.problem(where, f'{raw.get("type")} requires a duration: one of "seconds", "sec", "ms"'))
    return Delay(duration_ms(raw, where, DURATION_FIELDS, context) or 0)  # a bad value is a problem
