"""An interpreter Outcome -> the ops of the commit script (adapters/lua/commit.lua)."""

from __future__ import annotations

from typing import Any

from flow_engine.adapters.keys import HANDOFFS, OUTBOX, WEBHOOKS, Keys, handoff_member, ignored_field
from flow_engine.core.inbound import Event
from flow_engine.core.jsontext import compact, parse
from flow_engine.core.outcome import OutboxMessage, Outcome, WaitState, WebhookEvent

Op = list[Any]


# A wait is stored as a JSON array in this order: compact, as a million may be pending. New fields go
# at the end: an array written by an older engine is shorter, and its missing fields take defaults.
WAIT_FIELDS = ("run_id", "flow_id", "flow_version", "path", "index", "kind", "token", "due_ms", "trigger_text",
               "intent", "attempts", "expires", "steps")
# Written after those only up to the last one set, so a run without them is stored exactly as before
# they existed: the A/B variants a split chose ({location: path}), the run's trail entries so far,
# and for a contact with an agent, since when (ms) and the queue. Each with its unset value.
OPTIONAL_WAIT_FIELDS = ("variants", "trail", "since_ms", "queue")
_UNSET: tuple[Any, ...] = ({}, 0, None, "")


def dump_wait(wait: WaitState) -> str:
    fields = wait.to_dict()
    values = [fields[name] for name in WAIT_FIELDS]
    optional = [fields[name] for name in OPTIONAL_WAIT_FIELDS]
    while optional and optional[-1] == _UNSET[len(optional) - 1]:
        optional.pop()
    return compact(values + optional)


def load_wait(raw: str | None) -> WaitState | None:
    if raw is None:
        return None
    value = parse(raw)
    if isinstance(value, list):
        names = WAIT_FIELDS + OPTIONAL_WAIT_FIELDS
        if len(value) > len(names):
            raise ValueError(f"wait state has {len(value)} fields, at most {len(names)} are known")
        return WaitState.from_dict(dict(zip(names, value, strict=False)))
    return WaitState.from_dict(value)


def outcome_ops(keys: Keys, event: Event, outcome: Outcome) -> list[Op]:
    """Everything `outcome` changes in Redis (its DLQ entry, if it failed, is the caller's)."""
    ops: list[Op] = []
    for effect in outcome.effects:
        if isinstance(effect, OutboxMessage):
            ops.append(["x", OUTBOX, effect.flat()])
        elif isinstance(effect, WebhookEvent):
            ops.append(["x", WEBHOOKS, effect.flat()])
    if outcome.wait_changed:
        wait_key = keys.wait(event.org_id, event.channel_id, event.contact)
        ops.append(["u", wait_key] if outcome.wait_after is None else ["w", wait_key, dump_wait(outcome.wait_after)])
        if outcome.handed_off and outcome.wait_after is not None:  # the index of contacts with an agent
            ops.append(["a", HANDOFFS, str(outcome.wait_after.since_ms or 0),
                        handoff_member(event.org_id, event.channel_id, event.contact)])
        elif outcome.released_from_agent:
            ops.append(["b", HANDOFFS, handoff_member(event.org_id, event.channel_id, event.contact)])
    ops.extend(["r", timer.member()] for timer in outcome.timers_cancel)
    ops.extend(["z", str(timer.due_ms), timer.member()] for timer in outcome.timers_add)
    if outcome.ignored:
        ops.append(["h", ignored_field(outcome.ignored), 1])  # counted with the commit: once per event
    return ops
