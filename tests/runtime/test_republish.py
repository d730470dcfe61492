"""A message dead-lettered after its retries forgets its seen WhatsApp id, in the same commit that
writes its DLQ entry, so the platform's runbook can publish it again."""

from __future__ import annotations

from typing import Any

from flow_engine.adapters import lanes
from flow_engine.adapters.keys import DLQ, INCOMING, Keys
from flow_engine.adapters.scripts import connect
from flow_engine.core.inbound import Message
from flow_engine.runtime import Runtime
from flow_engine.settings import Settings
from tests.runtime.conftest import new_org


def test_dead_lettering_the_head_forgets_its_seen_mark(redis_url: str, database_url: str) -> None:
    r: Any = connect(redis_url)
    org = new_org()
    stream_id = r.xadd(INCOMING, {"org_id": org, "channel_id": "ch1", "payload": "{}"})
    message = Message(f"{stream_id}/0", org, "ch1", "5215550401", "hola", wa_message_id="wamid.DLQ1")
    lane = Keys.lane_id(org, 3)
    r.delete(Keys.lane(lane))
    r.rpush(Keys.lane(lane), lanes.encode(stream_id, 0, message))
    r.set(Keys.seen(org, "wamid.DLQ1"), "1")
    r.set(Keys.seen(org, "wamid.OTHER"), "1")
    rt = Runtime(Settings(redis_url=redis_url, database_url=database_url))
    try:
        assert rt.dead_letter_head(lane, "boom", retries=2)
    finally:
        rt.close()
    entries = [fields for _id, fields in r.xrange(DLQ) if fields.get("org_id") == org]
    assert [(e["error"], e["source_id"]) for e in entries] == [("max-retries-exceeded", stream_id)]
    assert r.exists(Keys.seen(org, "wamid.DLQ1")) == 0
    assert r.exists(Keys.seen(org, "wamid.OTHER")) == 1  # only the dead-lettered message's mark
    assert r.llen(Keys.lane(lane)) == 0
