"""`{"type": "action", "action": "webhook", "data": {...}}` (or `payload`): one `flow.webhook` event."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.steps.base import NoJumps, ParseContext
from flow_engine.core.template import has_placeholders


@dataclass(frozen=True)
class Webhook(NoJumps):
    data: Any
    templated: bool = False
    falls_through = True

    def run(self, execution: Any, path: str, index: int) -> None:
        execution.webhook(path, index, execution.fill(self.data, self.templated))

    def describe(self) -> str:
        return f"webhook: {json.dumps(self.data, ensure_ascii=False)}"


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> Webhook:
    data = raw["data"] if "data" in raw else raw.get("payload", {})
    return Webhook(data, has_placeholders(data))
