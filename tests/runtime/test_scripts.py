"""The Lua scripts against real Redis: each invariant they carry, one test each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from flow_engine.adapters import lanes
from flow_engine.adapters.keys import BRIDGE_LEASE, DLQ, INCOMING, LANE_PREFIX, STATS, TIMER_WAKE, Keys
from flow_engine.adapters.scripts import Scripts, connect
from flow_engine.core.inbound import Message
from flow_engine.core.outcome import Timer

GROUP = "engine"


@pytest.fixture
def r(redis_url: str) -> Iterator[Any]:
    client = connect(redis_url)
    client.flushdb()
    client.xgroup_create(INCOMING, GROUP, id="0", mkstream=True)
    yield client
    client.flushdb()


@pytest.fixture
def scripts(r: Any) -> Scripts:
    return Scripts(r)


def read(r: Any, count: int = 100) -> list[tuple[str, dict[str, str]]]:
    reply = r.xreadgroup(GROUP, "c1", {INCOMING: ">"}, count=count)
    return reply[0][1] if reply else []


def handoff(scripts: Scripts, token: str, entries: list[list[Any]], now: int = 1000) -> list[int]:
    flat: list[Any] = []
    for stream_id, pushes in entries:
        flat += [stream_id, len(pushes), *(part for push in pushes for part in push)]
    args = [GROUP, token, 5000, 3600, now, LANE_PREFIX, *flat]
    result = scripts.handoff(keys=[INCOMING, BRIDGE_LEASE, STATS], args=args)
    return [int(x) for x in result]


def test_handoff_pushes_acks_and_arms_once_and_skips_entries_handed_on_before(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    first = r.xadd(INCOMING, {"payload": "a"})
    second = r.xadd(INCOMING, {"payload": "b"})
    read(r)
    entries = [[first, [[3, "item-a", ""]]], [second, [[3, "item-b", ""], [7, "item-c", ""]]]]
    assert handoff(scripts, "me", entries) == [3, 0, 0, 3, 7]  # pushed, duplicates, ignored, lanes newly armed
    assert r.lrange(f"{LANE_PREFIX}3", 0, -1) == ["item-a", "item-b"]
    assert r.xpending(INCOMING, GROUP)["pending"] == 0
    # Read again after a crash (the entries were acked): nothing is pushed twice.
    assert handoff(scripts, "me", entries) == [0, 0, 0]
    assert r.llen(f"{LANE_PREFIX}3") == 2 and r.llen(f"{LANE_PREFIX}7") == 1


def test_handoff_drops_a_whatsapp_id_seen_before_and_counts_it(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    ids = [r.xadd(INCOMING, {"payload": str(n)}) for n in range(2)]
    read(r)
    seen = Keys.seen("acme", "wamid.1")
    assert handoff(scripts, "me", [[ids[0], [[1, "x", seen]]], [ids[1], [[1, "y", seen]]]]) == [1, 1, 0, 1]
    assert r.lrange(f"{LANE_PREFIX}1", 0, -1) == ["x"]
    assert r.hget(STATS, "ignored:duplicate") == "1"
    assert 0 < r.ttl(seen) <= 3600


def test_handoff_counts_entries_without_events(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    receipt = r.xadd(INCOMING, {"payload": "statuses only"})
    read(r)
    assert handoff(scripts, "me", [[receipt, []]]) == [0, 0, 1]
    assert r.hget(STATS, "ignored:receipt") == "1" and r.xpending(INCOMING, GROUP)["pending"] == 0


def test_handoff_is_fenced_by_the_bridge_lease(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "someone-else")
    entry = r.xadd(INCOMING, {"payload": "a"})
    read(r)
    with pytest.raises(Exception, match="FENCED"):
        handoff(scripts, "me", [[entry, [[0, "item", ""]]]])
    assert r.llen(f"{LANE_PREFIX}0") == 0
    assert r.xpending(INCOMING, GROUP)["pending"] == 1  # still pending: the lease holder hands it on


def test_dead_letter_moves_an_entry_to_the_dlq_once(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    entry = r.xadd(INCOMING, {"payload": "{bad"})
    read(r)
    args = [GROUP, "me", entry, "payload", "{bad", "error", "invalid-payload"]
    assert scripts.dead_letter(keys=[INCOMING, DLQ, BRIDGE_LEASE], args=args) == 1
    assert scripts.dead_letter(keys=[INCOMING, DLQ, BRIDGE_LEASE], args=args) == 0
    assert [fields for _id, fields in r.xrange(DLQ)] == [{"payload": "{bad", "error": "invalid-payload"}]


def commit(scripts: Scripts, lane: int, token: str, count: int, ops: list[Any], now: int = 5000) -> int:
    return int(scripts.commit(
        keys=[Keys.lane(lane), Keys.lane_lock(lane), Keys.lane_armed(lane), "nf:incoming:scheduled", STATS],
        args=[token, count, 2000, now, TIMER_WAKE, json.dumps(ops)]))


def test_commit_applies_effects_and_trims_only_while_holding_the_lane(r: Any, scripts: Scripts) -> None:
    r.rpush(Keys.lane(4), "e1", "e2", "e3")
    r.set(Keys.lane_armed(4), 1)
    r.set(Keys.lane_lock(4), "holder")
    ops = [["x", "nf:outbox", ["to", "1", "text", "hi"]], ["w", "fe:wait:a", "w"], ["z", "2000", "m1"]]
    assert commit(scripts, 4, "intruder", 2, ops) == -1  # fenced: nothing happens
    assert r.llen(Keys.lane(4)) == 3 and r.xlen("nf:outbox") == 0 and r.zcard("nf:incoming:scheduled") == 0
    assert commit(scripts, 4, "holder", 2, ops) == 1
    assert r.lrange(Keys.lane(4), 0, -1) == ["e3"]
    assert [f for _i, f in r.xrange("nf:outbox")] == [{"to": "1", "text": "hi"}]
    assert r.get("fe:wait:a") == "w" and r.zscore("nf:incoming:scheduled", "m1") == 2000
    assert r.get(Keys.lane_armed(4)) == "5000" and 0 < r.pttl(Keys.lane_lock(4)) <= 2000
    assert r.hget(STATS, "waits") == "1"
    assert commit(scripts, 4, "holder", 1, [["u", "fe:wait:a"], ["r", "m1"]]) == 0  # empty: disarmed, unlocked
    assert r.hget(STATS, "waits") == "0"
    assert r.exists(Keys.lane(4), Keys.lane_lock(4), Keys.lane_armed(4), "fe:wait:a") == 0
    assert r.zcard("nf:incoming:scheduled") == 0


def test_commit_holds_and_releases_messages_in_order_with_the_lane_trim(r: Any, scripts: Scripts) -> None:
    held = Keys.held("acme", "ch:1", "521")
    assert held == "fe:held:acme:ch%3A1:521"
    r.rpush(Keys.lane(5), "m1", "m2", "m3")
    r.set(Keys.lane_lock(5), "holder")
    hold = [["q", held, "m1"], ["q", held, "m2"]]
    assert commit(scripts, 5, "intruder", 2, hold) == -1  # fenced: nothing is held, nothing trimmed
    assert r.exists(held) == 0 and r.llen(Keys.lane(5)) == 3
    assert commit(scripts, 5, "holder", 2, hold) == 1
    assert r.lrange(held, 0, -1) == ["m1", "m2"] and r.lrange(Keys.lane(5), 0, -1) == ["m3"]
    # The resume that ends the delay releases the oldest first; a message arriving with it is held behind.
    assert commit(scripts, 5, "holder", 1, [["o", held, 1], ["q", held, "m3"], ["o", held, 1]]) == 0
    assert r.lrange(held, 0, -1) == ["m3"]


def test_commit_wakes_the_timer_loop_only_for_an_earlier_timer(r: Any, scripts: Scripts) -> None:
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(TIMER_WAKE)
    pubsub.get_message(timeout=1)
    r.zadd("nf:incoming:scheduled", {"existing": 3000})
    r.rpush(Keys.lane(1), "e")
    r.set(Keys.lane_lock(1), "t")
    commit(scripts, 1, "t", 0, [["z", "4000", "later"]])
    assert pubsub.get_message(timeout=0.2) is None
    commit(scripts, 1, "t", 0, [["z", "2500", "earlier"]])
    message = pubsub.get_message(timeout=1)
    assert message is not None and message["data"] == "2500"
    pubsub.close()


def test_pop_due_publishes_each_due_timer_once_with_its_lateness(r: Any, scripts: Scripts) -> None:
    timers = [Timer(f"t{n}", 1000 + n * 100, "acme", "ch", f"52{n}", f"run{n}", "timeout") for n in range(3)]
    r.zadd("nf:incoming:scheduled", {t.member(): t.due_ms for t in timers})
    result = scripts.pop_due(keys=["nf:incoming:scheduled", INCOMING], args=[1150, 1000])
    assert [int(x) for x in result[:1]] == [2] and int(result[1]) == 1200
    assert [int(x) for x in result[2:]] == [150, 50]
    published = [fields for _id, fields in r.xrange(INCOMING)]
    assert published == [{**t.resume_fields()} for t in timers[:2]]
    again = scripts.pop_due(keys=["nf:incoming:scheduled", INCOMING], args=[1150, 1000])
    assert int(again[0]) == 0 and r.xlen(INCOMING) == 2


def test_sweep_rearms_lanes_with_events_and_no_live_worker(r: Any, scripts: Scripts) -> None:
    r.rpush(Keys.lane(0), "e")  # never armed: a bridge died between push and enqueue
    r.rpush(Keys.lane(1), "e")
    r.set(Keys.lane_armed(1), 9_500)  # armed recently: its task may still be on its way
    r.rpush(Keys.lane(2), "e")
    r.set(Keys.lane_armed(2), 1_000)  # armed long ago, no holder
    r.rpush(Keys.lane(3), "e")
    r.set(Keys.lane_armed(3), 1_000)
    r.set(Keys.lane_lock(3), "alive")  # a worker holds it
    assert sorted(int(x) for x in scripts.sweep(args=[LANE_PREFIX, 8, 10_000, 1_000])) == [0, 2]
    assert r.get(Keys.lane_armed(0)) == "10000"


def test_lane_items_carry_the_parsed_event_and_where_it_came_from() -> None:
    message = Message("1-0/2", "acme", "ch", "521", "ñandú", "Ana", "wamid.1", None, "text")
    resume = Timer("tok", 5, "acme", "ch", "521", "run", "delay").resume()
    for event in (message, resume):
        assert lanes.decode(lanes.encode("1-0", 2, event)) == lanes.Item("1-0", 2, event)


def test_the_source_of_a_lane_item_is_its_stream_entry(r: Any) -> None:
    entry_id = r.xadd(INCOMING, {"org_id": "acme", "payload": "{}"})
    item = lanes.Item(entry_id, 0, Message(f"{entry_id}/0", "acme", "ch", "521", "x"))
    assert lanes.source_fields(r, item) == {"org_id": "acme", "payload": "{}"}
    r.xdel(INCOMING, entry_id)
    assert lanes.source_fields(r, item) == {"org_id": "acme", "channel_id": "ch",
                                            "trimmed": "original entry no longer in stream"}
