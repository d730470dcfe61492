"""`{"type": "end"}`: the run completes here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.steps.base import END, NoJumps, ParseContext, _End


@dataclass(frozen=True)
class End(NoJumps):
    falls_through = False

    def run(self, execution: Any, path: str, index: int) -> _End:
        return END

    def describe(self) -> str:
        return "end"


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> End:
    return End()
