"""Step types as modules: each `parse`s its raw step into an object that runs, describes itself and
names its jumps (the contract is in base.py). Adding a step type is one module here, one line in
STEP_TYPES (or ACTIONS, for an `"type": "action"` step), and its fixtures
(tests/fixtures/runs/<name>_*.json): the parser, the interpreter's loop, the simulator and the
Mermaid drawer need no edit."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from flow_engine.core.steps import (
    branch,
    business_hours,
    delay,
    end,
    goto,
    handoff,
    send_media,
    send_template,
    send_text,
    set_attribute,
    split,
    tag,
    wait_for_reply,
    webhook,
)
from flow_engine.core.steps.base import END, NEXT, Invalid, Next, ParseContext

Parse = Callable[[Mapping[str, Any], str, ParseContext], Any]

ACTIONS: Mapping[str, Parse] = {
    "send_text": send_text.parse,
    "send_template": send_template.parse,
    "send_media": send_media.parse,
    "webhook": webhook.parse,
}


def parse_action(raw: Mapping[str, Any], where: str, context: ParseContext) -> Any:
    action = raw.get("action")
    if isinstance(action, str) and action in ACTIONS:
        return ACTIONS[action](raw, where, context)
    if action is None:
        return Invalid(context.problem(where, 'an action step requires "action"'))
    return Invalid(context.problem(where, f"unknown action {json.dumps(action)}"))


STEP_TYPES: Mapping[str, Parse] = {
    "action": parse_action,
    "set_attribute": set_attribute.parse,
    "wait": delay.parse,
    "delay": delay.parse,
    "wait_for_reply": wait_for_reply.parse,
    "branch": branch.parse,
    "goto": goto.parse,
    "end": end.parse,
    "split": split.parse,
    "handoff": handoff.parse,
    "business_hours": business_hours.parse,
    "add_tag": tag.parse,
    "remove_tag": tag.parse,
}

__all__ = ["ACTIONS", "END", "NEXT", "STEP_TYPES", "Invalid", "Next", "ParseContext"]
