"""Messages held during a delay (SPEC §5.1), in Redis: one list per contact of lane items, oldest
first. Only the worker holding the contact's lane changes it, and only through the commit script,
so holding and releasing are exactly-once with the rest of an event's effects."""

from __future__ import annotations

from flow_engine.adapters import lanes
from flow_engine.adapters.effects import Op
from flow_engine.adapters.keys import Keys
from flow_engine.adapters.scripts import RedisClient
from flow_engine.core.outcome import WaitState

Who = tuple[str, str, str]  # (org_id, channel_id, contact)


def load(client: RedisClient, waits: dict[Who, WaitState | None]) -> dict[Who, list[lanes.Item]]:
    """The held messages of each contact; only a contact whose run is in a delay can have any, so
    only those lists are read (no round trip at all when no contact of the batch is in a delay)."""
    who = sorted(w for w, wait in waits.items() if wait is not None and wait.kind == "delay")
    held: dict[Who, list[lanes.Item]] = {w: [] for w in waits}
    if not who:
        return held
    pipe = client.pipeline(transaction=False)
    for w in who:
        pipe.lrange(Keys.held(*w), 0, -1)
    for w, raw in zip(who, pipe.execute(), strict=True):
        held[w] = [lanes.decode(item) for item in raw]
    return held


def hold_op(who: Who, item: lanes.Item) -> Op:
    return ["q", Keys.held(*who), lanes.encode(item.stream_id, item.index, item.event)]


def release_op(who: Who) -> Op:
    return ["o", Keys.held(*who), 1]
