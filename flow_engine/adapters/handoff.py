"""Contacts with an agent (SPEC §5.3), for operators: who is with an agent and since when, and the
release, which is published as a control entry on nf:incoming so that it travels the contact's lane
in stream order (a release and a message racing are decided by which was written first), never
applied to the state directly."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flow_engine.adapters.effects import load_wait
from flow_engine.adapters.keys import HANDOFFS, INCOMING, Keys
from flow_engine.adapters.scripts import RedisClient


@dataclass(frozen=True)
class WithAgent:
    org_id: str
    channel_id: str
    contact: str
    since_ms: int
    queue: str
    release_due_ms: int | None  # FLOW_ENGINE_HANDOFF_TTL_MIN after since_ms, as it was then
    run_id: str

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def with_agent(client: RedisClient, keys: Keys, org_id: str | None = None) -> list[WithAgent]:
    """Contacts with an agent, longest first; of one org when `org_id` is given. Read from the index
    fe:handoffs and each contact's wait state (both written by the same commit)."""
    members: list[tuple[list[str], float]] = []
    for raw, score in client.zrange(HANDOFFS, 0, -1, withscores=True):
        who = json.loads(raw)
        if org_id is None or who[0] == org_id:
            members.append((who, score))
    if not members:
        return []
    waits = client.mget([keys.wait(*who) for who, _score in members])
    found = []
    for (who, score), raw in zip(members, waits, strict=True):
        wait = load_wait(raw)
        if wait is None or wait.kind != "handoff":  # released between the two reads
            continue
        found.append(WithAgent(who[0], who[1], who[2], wait.since_ms or int(score), wait.queue, wait.due_ms,
                               wait.run_id))
    return found


def release(client: RedisClient, org_id: str, channel_id: str, contact: str, source: str = "cli") -> str:
    """Publish the control entry that releases a contact from its agent; returns its stream id."""
    return str(client.xadd(INCOMING, {"source": source, "org_id": org_id, "channel_id": channel_id,
                                      "control": "release", "contact": contact}))


def is_with_agent(client: RedisClient, keys: Keys, org_id: str, channel_id: str, contact: str) -> bool:
    wait = load_wait(client.get(keys.wait(org_id, channel_id, contact)))
    return wait is not None and wait.kind == "handoff"
