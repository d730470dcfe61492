"""A conversation simulator: the production interpreter driven by a virtual clock, state kept
between steps exactly as the runtime keeps it (wait state, timers, contact attributes, messages held
during a delay)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flow_engine.core.control import DEFAULT_CONTROL, Control
from flow_engine.core.conversation import OneFlow, handle, with_outcome
from flow_engine.core.graph import Flow
from flow_engine.core.inbound import Event, Message, Release, Resume
from flow_engine.core.outcome import (
    AttributeWrite,
    Contact,
    Jumped,
    OutboxMessage,
    Outcome,
    TagWrite,
    Timer,
    WaitState,
    WebhookEvent,
)


@dataclass(frozen=True)
class Happening:
    """One line of a simulation: an inbound event and what it caused."""

    at_ms: int  # virtual time since the simulation started
    event: Event
    outcome: Outcome
    start_ms: int = 0  # the clock's start (epoch ms): due times are shown relative to it, as at_ms is


class Simulator:
    def __init__(
        self, flow: Flow | None, *, org_id: str, channel_id: str, contact: Contact, control: Control = DEFAULT_CONTROL,
        start_ms: int = 0,
    ) -> None:
        self.flow, self.control = flow, control
        self.org_id, self.channel_id = org_id, channel_id
        self.contact = contact
        self.start_ms = start_ms  # the virtual clock's start, epoch ms (business hours read it)
        self.now_ms = start_ms
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

    def release(self) -> list[Happening]:
        """A `control=release` entry for the contact: the agent is done (SPEC §5.3)."""
        self._messages += 1
        return self._process(Release(key=f"sim-{self._messages}/0", org_id=self.org_id,
                                     channel_id=self.channel_id, contact=self.contact.phone))

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
            happened.append(Happening(self.now_ms - self.start_ms, event, outcome, self.start_ms))
        return happened


def effect_lines(happening: Happening) -> list[dict[str, Any]]:
    """The effects of one event as JSON-ready objects (`simulate --json` lines), in order."""
    outcome, lines = happening.outcome, []
    at = {"at_ms": happening.at_ms}
    start = happening.start_ms
    if outcome.released:
        lines.append({"kind": "held", "action": "release", "text": getattr(happening.event, "text", ""), **at})
    if outcome.ended is not None:
        lines.append({"kind": "run", "status": outcome.ended.status, "last_step": outcome.ended.last_step, **at})
    for timer in outcome.timers_cancel:
        lines.append({"kind": "timer", "action": "cancel", "token": timer.token, "due_ms": timer.due_ms - start, **at})
    for effect in outcome.effects:
        if isinstance(effect, OutboxMessage):
            lines.append({"kind": "outbox", **effect.fields(), **at})
        elif isinstance(effect, WebhookEvent):
            fields: dict[str, Any] = effect.fields()
            lines.append({"kind": "webhook", **fields, "body": dict(effect.body), **at})
        elif isinstance(effect, AttributeWrite):
            lines.append({"kind": "attribute", "key": effect.key, "value": effect.value, **at})
        elif isinstance(effect, TagWrite):
            lines.append({"kind": "tag", "action": "add" if effect.present else "remove", "tag": effect.tag, **at})
        elif isinstance(effect, Jumped):
            lines.append({"kind": "jump", "step": effect.step, "via": effect.via, "path": effect.path, **at})
    if outcome.wait_changed:
        wait = outcome.wait_after
        if wait is None:
            lines.append({"kind": "wait", "action": "clear", **at})
        else:
            lines.append({"kind": "wait", "action": "set", "for": wait.kind, "step": f"{wait.path}:{wait.index}",
                          "due_ms": None if wait.due_ms is None else wait.due_ms - start, **at})
    for timer in outcome.timers_add:
        lines.append({"kind": "timer", "action": "add", "token": timer.token, "due_ms": timer.due_ms - start,
                      "reason": timer.reason, **at})
    if outcome.handed_off and outcome.wait_after is not None:
        lines.append({"kind": "handoff", "action": "start", "queue": outcome.wait_after.queue or None, **at})
    if outcome.released_from_agent:
        by = "ttl" if isinstance(happening.event, Resume) else "release"
        lines.append({"kind": "handoff", "action": "release", "by": by, **at})
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
