"""`{"type": "add_tag", "tag": T}` / `{"type": "remove_tag", "tag": T}`: `contacts.attributes.tags`,
a sorted list without duplicates, gets or loses T; then continue. Merged by the database (a tag
added by another service at the same moment survives), as `set_attribute` merges keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.steps.base import Invalid, NoJumps, ParseContext
from flow_engine.core.template import has_placeholders, render

MAX_TAG_CHARS = 256


@dataclass(frozen=True)
class Tag(NoJumps):
    tag: str
    present: bool  # add_tag: True, remove_tag: False
    templated: bool = False
    falls_through = True

    def run(self, execution: Any, path: str, index: int) -> None:
        tag = render(self.tag, execution.values()).strip() if self.templated else self.tag
        if tag:  # a placeholder that renders empty tags nothing
            execution.tag(tag, self.present)

    def describe(self) -> str:
        return f"{'add' if self.present else 'remove'} tag {self.tag}"


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> Tag | Invalid:
    kind = str(raw.get("type"))
    tag = raw.get("tag")
    if not isinstance(tag, str) or not tag.strip():
        return Invalid(context.problem(f"{where}.tag", f'{kind} requires "tag" (a non-empty string)'))
    if len(tag) > MAX_TAG_CHARS:
        return Invalid(context.problem(f"{where}.tag", f"longer than {MAX_TAG_CHARS} characters"))
    return Tag(tag.strip(), kind == "add_tag", has_placeholders(tag))
