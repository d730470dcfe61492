"""The oracle of the chaos suite: what the engine must have produced, computed from the inputs by
the pure core — the same conversation function the workers run (held messages included), fed each
contact's events in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flow_engine.core.conversation import OneFlow, handle
from flow_engine.core.graph import Flow
from flow_engine.core.inbound import Event, Message
from flow_engine.core.outcome import AttributeWrite, Contact, Timer, WaitState


@dataclass
class ContactModel:
    flow: Flow
    org_id: str
    channel_id: str
    phone: str
    wait: WaitState | None = None
    held: list[Message] = field(default_factory=list)  # messages held during a delay, in order
    attributes: dict[str, Any] = field(default_factory=dict)
    timers: dict[str, Timer] = field(default_factory=dict)
    outbox: list[tuple[str, str]] = field(default_factory=list)  # (client_id, text or type) in order
    webhooks: list[str] = field(default_factory=list)  # event ids
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)  # run id -> (status, last_step)
    most_held: int = 0  # the longest the held list got

    def message(self, stream_id: str, text: str) -> None:
        self._run(Message(key=f"{stream_id}/0", org_id=self.org_id, channel_id=self.channel_id,
                          contact=self.phone, text=text))

    def fire_timers(self) -> None:
        """Every delay and reply timeout still set comes due, in due order (after the contact's last
        message); expiries (24 h) do not come due during a test."""
        while due := [t for t in self.timers.values() if t.reason != "expire"]:
            timer = min(due, key=lambda t: t.due_ms)
            del self.timers[timer.token]
            self._run(timer.resume())

    def _run(self, event: Event) -> None:
        outcomes = handle(event, self.wait, self.held, Contact(self.phone, "", self.attributes), 0,
                          OneFlow(self.flow))
        for outcome in outcomes:
            if outcome.released:
                self.held.pop(0)
            elif outcome.hold:
                assert isinstance(event, Message)
                self.held.append(event)
            self.most_held = max(self.most_held, len(self.held))
            for effect in outcome.effects:
                if isinstance(effect, AttributeWrite):
                    self.attributes[effect.key] = effect.value
            self.outbox.extend((m.client_id, m.content if m.type == "text" else m.type) for m in outcome.outbox)
            self.webhooks.extend(w.event_id for w in outcome.webhooks)
            for run in (outcome.ended, outcome.run):
                if run is not None:
                    self.runs[run.id] = (run.status, run.last_step)
            for timer in outcome.timers_cancel:
                self.timers.pop(timer.token, None)
            self.timers.update((t.token, t) for t in outcome.timers_add)
            self.wait = outcome.wait_after
