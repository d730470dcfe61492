"""`{"type": "action", "action": "send_text", "text": T}`: one outbox entry of type text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.steps.base import Invalid, NoJumps, ParseContext
from flow_engine.core.template import render


@dataclass(frozen=True)
class SendText(NoJumps):
    text: str
    falls_through = True

    def run(self, execution: Any, path: str, index: int) -> None:
        execution.send("text", render(self.text, execution.values()))

    def describe(self) -> str:
        return f"send: {self.text}"


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> SendText | Invalid:
    text = raw.get("text")
    if not isinstance(text, str):
        return Invalid(context.problem(where, 'send_text requires "text" (a string)'))
    return SendText(text)
