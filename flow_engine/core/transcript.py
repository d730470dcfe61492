"""A simulation as a readable chat transcript (`flow-engine simulate` without --json): one or more
lines per event, stamped with the virtual clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flow_engine.core.outcome import AttributeWrite, Jumped, OutboxMessage, TagWrite, WebhookEvent
from flow_engine.core.simulator import Happening

IGNORED = {
    "no-match": "ignored: the reply does not match the pattern",
    "stale-timer": "timer no longer current",
    "handoff": "ignored: the contact is with an agent",
    "not-with-agent": "ignored: the contact is not with an agent",
}


def transcript(happening: Happening, who: str) -> list[str]:
    """The effects of one event as a readable chat transcript."""
    stamp = f"[{happening.at_ms / 1000:7.3f}s]"
    pad = " " * len(stamp)
    event, outcome = happening.event, happening.outcome
    if hasattr(event, "text"):
        lines = [f"{stamp} {who} > {event.text}" + ("   (held until now)" if outcome.released else "")]
    elif not hasattr(event, "reason"):
        lines = [f"{stamp} ⇄ release (the agent is done)"]
    elif event.reason == "handoff":
        lines = [f"{stamp} ⏰ the handoff's time is up"]
    else:
        lines = [f"{stamp} ⏰ {'the wait expires' if event.reason == 'expire' else f'{event.reason} is due'}"]
    if outcome.ended is not None:
        lines.append(f"{pad} ■ run {outcome.ended.status}")
    for effect in outcome.effects:
        if isinstance(effect, OutboxMessage):
            shown = effect.content if effect.type == "text" else json.dumps(effect.content, ensure_ascii=False)
            lines.append(f"{pad} bot > {shown}" if effect.type == "text" else f"{pad} bot > [{effect.type}] {shown}")
        elif isinstance(effect, WebhookEvent):
            kind = "handoff" if effect.type == "flow.handoff" else "webhook"
            lines.append(f"{pad} → {kind} {json.dumps(effect.body['data'], ensure_ascii=False)}")
        elif isinstance(effect, TagWrite):
            lines.append(f"{pad} ✎ tag {'+' if effect.present else '-'}{effect.tag}")
        elif isinstance(effect, AttributeWrite):
            lines.append(f"{pad} ✎ {effect.key} = {json.dumps(effect.value, ensure_ascii=False)}")
        elif isinstance(effect, Jumped):
            lines.append(f"{pad} ↪ {effect.step} {effect.via} → {effect.path}")
    wait = outcome.wait_after
    if outcome.wait_changed and wait is not None:
        due = "" if wait.due_ms is None else f" until {(wait.due_ms - happening.start_ms) / 1000:.3f}s"
        if wait.due_ms is not None and wait.kind != "reply" and wait.due_ms - happening.start_ms >= 3_600_000:
            # a long pause (business hours): when, on the calendar
            due += datetime.fromtimestamp(wait.due_ms / 1000, UTC).strftime(" (%Y-%m-%d %H:%M:%S UTC)")
        waiting = {"reply": "waiting for a reply", "delay": "waiting for the delay", "handoff": "with an agent"}
        lines.append(f"{pad} … {waiting[wait.kind]}{due}")
    if outcome.released_from_agent:
        lines.append(f"{pad} (back with the bot)")
    if outcome.ignored:
        lines.append(f"{pad} ({IGNORED.get(outcome.ignored, outcome.ignored)})")
    if outcome.hold:
        lines.append(f"{pad} (held: the run is in a delay; handled when it waits for a reply or ends)")
    if outcome.failure is not None and outcome.run is None:
        lines.append(f"{pad} (to the DLQ, {outcome.failure.code}: {outcome.failure.detail})")
    if outcome.run is not None and outcome.run.status != "running":
        error = outcome.run.context.get("error")
        lines.append(f"{pad} ■ run {outcome.run.status}" + (f": {error}" if error else ""))
    return lines
