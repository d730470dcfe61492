"""`{"type": "action", "action": "send_template", "template": NAME}`: one outbox entry of type template."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.steps.base import Invalid, NoJumps, ParseContext, text_field
from flow_engine.core.template import has_placeholders

DEFAULT_LANGUAGE: Mapping[str, Any] = {"code": "es"}


@dataclass(frozen=True)
class SendTemplate(NoJumps):
    name: str
    language: Any
    components: Any
    templated: bool = False  # components hold placeholders
    falls_through = True

    def run(self, execution: Any, path: str, index: int) -> None:
        components = execution.fill(self.components, self.templated)
        execution.send("template", {"name": self.name, "language": self.language, "components": components})

    def describe(self) -> str:
        return f"template: {self.name}"


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> SendTemplate | Invalid:
    name = text_field(raw, "template")
    if name is None:
        return Invalid(context.problem(where, 'send_template requires "template" (a name)'))
    components = raw.get("components", [])
    if not isinstance(components, list):
        context.problem(f"{where}.components", "must be a list")
    return SendTemplate(name, raw.get("language", DEFAULT_LANGUAGE), components, has_placeholders(components))
