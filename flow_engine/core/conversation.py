"""One contact's conversation, event by event, with the messages held during a delay (SPEC §5.1).

A message that arrives while the contact's run is in a delay is held, in order. When an event
leaves the contact with no delay running — the delay ended and the run paused for a reply or
ended — the held messages are handled right then, in the same step, one by one (the first one is
the reply, the next ones come after it; a run that ended lets each enter the flow in turn), until
none is left or the run is in a delay again. So held messages keep their place in the contact's
order, and the runtime commits them with the event that released them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from flow_engine.core.control import DEFAULT_CONTROL, Control
from flow_engine.core.graph import Flow
from flow_engine.core.inbound import Event, Message
from flow_engine.core.interpreter import interpret
from flow_engine.core.limits import cap_outputs
from flow_engine.core.outcome import Contact, Outcome, WaitState, apply_attribute_effects


class Flows(Protocol):
    """Where flows come from: the org's active flow, and a paused run's own flow by id."""

    def active(self, org_id: str) -> Flow | None: ...

    def by_id(self, flow_id: str) -> Flow | None: ...


class OneFlow:
    """A single flow as the active flow of every org (the simulator, tests)."""

    def __init__(self, flow: Flow | None) -> None:
        self.flow = flow

    def active(self, org_id: str) -> Flow | None:
        return self.flow

    def by_id(self, flow_id: str) -> Flow | None:
        return self.flow if self.flow is not None and self.flow.id == flow_id else None


def with_outcome(contact: Contact, outcome: Outcome) -> Contact:
    """The contact as the next event sees it: attribute writes, tag changes and a new name applied."""
    if not outcome.changes_contact and not outcome.contact_name:
        return contact
    return replace(contact, attributes=apply_attribute_effects(contact.attributes, outcome.effects),
                   name=outcome.contact_name or contact.name)


def handle(
    event: Event,
    wait: WaitState | None,
    held: Sequence[Message],
    contact: Contact,
    now_ms: int,
    flows: Flows,
    *,
    control: Control = DEFAULT_CONTROL,
    fallback_language: str = "es",
    intent: str | None = None,
    max_outputs: int = 500,
    max_output_bytes: int = 1024 * 1024,
) -> list[Outcome]:
    """The outcomes of `event` and of the held messages it releases, in order: the first is the
    event's own; each next one is `released` and handles held[0], held[1], ... in turn. `intent`:
    the event's, if decided outside (the NLP service); each outcome is capped (core/limits.py)."""
    outcomes: list[Outcome] = []
    queue = list(held)
    current: Event = event
    while True:
        outcome = cap_outputs(
            _one(current, wait, len(queue), contact, now_ms, flows, control, fallback_language,
                 intent if current is event else None),
            max_outputs=max_outputs, max_bytes=max_output_bytes)
        if current is not event:
            outcome = replace(outcome, released=True)
        outcomes.append(outcome)
        if outcome.hold:
            assert isinstance(current, Message)
            queue.append(current)
        wait, contact = outcome.wait_after, with_outcome(contact, outcome)
        if not queue or (wait is not None and wait.kind == "delay"):
            return outcomes
        current = queue.pop(0)


def _one(
    event: Event, wait: WaitState | None, held: int, contact: Contact, now_ms: int, flows: Flows, control: Control,
    fallback_language: str, intent: str | None,
) -> Outcome:
    active: Any = flows.active(event.org_id) if isinstance(event, Message) else None
    flow = flows.by_id(wait.flow_id) if wait is not None else active
    return interpret(flow, event, wait, contact, now_ms, fallback_language=fallback_language, control=control,
                     active=active, held=held, intent=intent)
