"""A conversation simulator: the production interpreter driven by a virtual clock, state kept
between steps exactly as the runtime keeps it (wait state, timers, contact attributes, messages held
during a delay)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flow_engine.core.control import DEFAULT_CONTROL, Control
from flow_engine.core.conversation import OneFlow, handle, with_outcome
from flow_engine.core.graph import Flow
from flow_engine.core.inbound import Event, Message
from flow_engine.core.outcome import (
    AttributeWrite,
    Contact,
    Jumped,
    OutboxMessage,
    Outcome,
    Timer,
    WaitState,
    WebhookEvent,
)


@dataclass(frozen=True)
class Happening:
    """One line of a simulation: an inbound event and what it caused."""

    at_ms: int
    event: Event
    outcome: Outcome


class Simulator:
    def __init__(
        self, flow: Flow | None, *, org_id: str, channel_id: str, contact: Contact, control: Control = DEFAULT_CONTROL
    ) -> None:
        self.flow, self.control = flow, control
        self.org_id, self.channel_id = org_id, channel_id
        self.contact = contact
        self.now_ms = 0
        self.wait: WaitState | None = None
        self.held: list[Message] = []  # messages received during a delay, in order
        self.timers: dict[str, Timer] = {}
        self._messages = 0

    def say(self, text: str) -> list[Happening]:
        self._messages += 1
        event = Message(
            key=f"sim-{self._messages}/0", org_id=self.org_id, channel_id=self.channel_id,
            contact=self.contact.phone, text=text, name=self.contact.name or None,
        )
        return self._process(event)

    def advance(self, seconds: float) -> list[Happening]:
        """Move the clock forward; due timers fire in due order, each at its own due time."""
        end_ms = self.now_ms + round(seconds * 1000)
        happened = []
        while due := sorted((t for t in self.timers.values() if t.due_ms <= end_ms), key=lambda t: t.due_ms):
            timer = due[0]
            del self.timers[timer.token]
            self.now_ms = max(self.now_ms, timer.due_ms)
            happened.extend(self._process(timer.resume()))
        self.now_ms = end_ms
        return happened

    def _process(self, event: Event) -> list[Happening]:
        outcomes = handle(event, self.wait, self.held, self.contact, self.now_ms, OneFlow(self.flow),
                          control=self.control)
        happened = []
        for outcome in outcomes:
            if outcome.released:
                event = self.held.pop(0)
            elif outcome.hold:
                assert isinstance(event, Message)
                self.held.append(event)
            self.contact = with_outcome(self.contact, outcome)
            self.wait = outcome.wait_after
            for timer in outcome.timers_cancel:
                self.timers.pop(timer.token, None)
            self.timers.update((timer.token, timer) for timer in outcome.timers_add)
            happened.append(Happening(self.now_ms, event, outcome))
        return happened


def effect_lines(happening: Happening) -> list[dict[str, Any]]:
    """The effects of one event as JSON-ready objects (`simulate --json` lines), in order."""
    outcome, lines = happening.outcome, []
    at = {"at_ms": happening.at_ms}
    if outcome.released:
        lines.append({"kind": "held", "action": "release", "text": getattr(happening.event, "text", ""), **at})
    if outcome.ended is not None:
        lines.append({"kind": "run", "status": outcome.ended.status, "last_step": outcome.ended.last_step, **at})
    for timer in outcome.timers_cancel:
        lines.append({"kind": "timer", "action": "cancel", "token": timer.token, "due_ms": timer.due_ms, **at})
    for effect in outcome.effects:
        if isinstance(effect, OutboxMessage):
            lines.append({"kind": "outbox", **effect.fields(), **at})
        elif isinstance(effect, WebhookEvent):
            fields: dict[str, Any] = effect.fields()
            lines.append({"kind": "webhook", **fields, "body": dict(effect.body), **at})
        elif isinstance(effect, AttributeWrite):
            lines.append({"kind": "attribute", "key": effect.key, "value": effect.value, **at})
        elif isinstance(effect, Jumped):
            lines.append({"kind": "jump", "step": effect.step, "via": effect.via, "path": effect.path, **at})
    if outcome.wait_changed:
        wait = outcome.wait_after
        if wait is None:
            lines.append({"kind": "wait", "action": "clear", **at})
        else:
            lines.append({"kind": "wait", "action": "set", "for": wait.kind, "step": f"{wait.path}:{wait.index}",
                          "due_ms": wait.due_ms, **at})
    for timer in outcome.timers_add:
        lines.append({"kind": "timer", "action": "add", "token": timer.token, "due_ms": timer.due_ms,
                      "reason": timer.reason, **at})
    if outcome.run is not None:
        run: dict[str, Any] = {"kind": "run", "status": outcome.run.status, "last_step": outcome.run.last_step}
        if "error" in outcome.run.context:
            run["error"] = outcome.run.context["error"]
        if "variants" in outcome.run.context:
            run["variants"] = outcome.run.context["variants"]
        lines.append({**run, **at})
    if outcome.hold:
        lines.append({"kind": "held", "action": "add", "text": getattr(happening.event, "text", ""), **at})
    if outcome.ignored:
        lines.append({"kind": "ignored", "reason": outcome.ignored, **at})
    if outcome.failure is not None and outcome.run is None:
        lines.append({"kind": "dlq", "error": outcome.failure.code, "detail": outcome.failure.detail, **at})
    return lines
