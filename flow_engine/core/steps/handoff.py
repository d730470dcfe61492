"""`{"type": "handoff", "queue"?, "note"?}`: one `flow.handoff` event (`body.data` = {"queue", "note"}),
the run completes, and the contact is with an agent: no bot output until released (SPEC §5.3)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.steps.base import NoJumps, ParseContext
from flow_engine.core.template import has_placeholders, render


@dataclass(frozen=True)
class Handoff(NoJumps):
    queue: str | None
    note: str | None
    falls_through = False  # the run completes here

    def run(self, execution: Any, path: str, index: int) -> Any:
        note = self.note
        if note is not None and has_placeholders(note):
            note = render(note, execution.values())
        return execution.hand_off(path, index, self.queue, note)

    def describe(self) -> str:
        queue = f" to {self.queue}" if self.queue else ""
        return f"hand off{queue}"


def _text(raw: Mapping[str, Any], name: str, where: str, context: ParseContext) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        context.problem(f"{where}.{name}", f"must be a string, got {json.dumps(value, ensure_ascii=False)}")
        return None
    return value


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> Handoff:
    return Handoff(_text(raw, "queue", where, context), _text(raw, "note", where, context))
