"""`{"type": "set_attribute", "key": K, "value": V}`: `contacts.attributes[K] = V`, then continue."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.steps.base import Invalid, NoJumps, ParseContext, text_field
from flow_engine.core.template import has_placeholders


@dataclass(frozen=True)
class SetAttribute(NoJumps):
    key: str
    value: Any
    templated: bool = False
    falls_through = True

    def run(self, execution: Any, path: str, index: int) -> None:
        execution.save(self.key, execution.fill(self.value, self.templated))

    def describe(self) -> str:
        return f"set {self.key} = {json.dumps(self.value, ensure_ascii=False)}"


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> SetAttribute | Invalid:
    key = text_field(raw, "key")
    if key is None:
        return Invalid(context.problem(where, 'set_attribute requires "key" (a non-empty string)'))
    if "value" not in raw:
        return Invalid(context.problem(where, 'set_attribute requires "value"'))
    return SetAttribute(key, raw["value"], has_placeholders(raw["value"]))
