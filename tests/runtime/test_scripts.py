"""The Lua scripts against real Redis: each invariant they carry, one test each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bridge.loop import Bridge
from flow_engine.adapters import dedupe, lanes
from flow_engine.adapters.keys import (
    BRIDGE_LEASE,
    CONVERSING,
    DLQ,
    INBOX_PREFIX,
    INBOXES,
    INCOMING,
    LANE_PREFIX,
    LANES,
    SECRET,
    STATS,
    TIMER_WAKE,
    Keys,
)
from flow_engine.adapters.scripts import Scripts, connect
from flow_engine.adapters.signing import load_secret, resume_sig, resume_signed
from flow_engine.core.inbound import Message, Release, parse_entry
from flow_engine.core.outcome import Timer
from flow_engine.settings import Settings

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


def handoff(scripts: Scripts, token: str, entries: list[list[Any]], now: int = 1000) -> list[int | str]:
    flat: list[Any] = []
    for stream_id, pushes in entries:
        flat += [stream_id, INCOMING, len(pushes), *(part for push in pushes for part in push)] if pushes else \
            [stream_id, INCOMING, 0, "receipt"]
    # dedupe: slots of 900 s, now slot 7
    args = [GROUP, token, 5000, 900, now, LANE_PREFIX, 7, INBOX_PREFIX, *flat]
    result = scripts.handoff(keys=[INCOMING, BRIDGE_LEASE, STATS, LANES, INBOXES], args=args)
    return [int(x) for x in result[:4]] + [str(lane) for lane in result[4:]]


def test_handoff_pushes_acks_and_arms_once_and_skips_entries_handed_on_before(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    first = r.xadd(INCOMING, {"payload": "a"})
    second = r.xadd(INCOMING, {"payload": "b"})
    read(r)
    entries = [[first, [["acme:3", "item-a", ""]]], [second, [["acme:3", "item-b", ""], ["zeta:7", "item-c", ""]]]]
    # pushed, duplicates, receipts, forged, then the lanes armed (each org has its own lanes)
    assert handoff(scripts, "me", entries) == [3, 0, 0, 0, "acme:3", "zeta:7"]
    assert r.lrange(f"{LANE_PREFIX}acme:3", 0, -1) == ["item-a", "item-b"]
    assert r.smembers(LANES) == {"acme:3", "zeta:7"}
    assert r.xpending(INCOMING, GROUP)["pending"] == 0
    # Read again after a crash (the entries were acked): nothing is pushed twice.
    assert handoff(scripts, "me", entries) == [0, 0, 0, 0]
    assert r.llen(f"{LANE_PREFIX}acme:3") == 2 and r.llen(f"{LANE_PREFIX}zeta:7") == 1


def test_handoff_drops_a_whatsapp_id_seen_before_and_counts_it(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    ids = [r.xadd(INCOMING, {"payload": str(n)}) for n in range(2)]
    read(r)
    seen = dedupe.seen_arg("acme", "wamid.1")
    assert handoff(scripts, "me", [[ids[0], [["acme:1", "x", seen]]], [ids[1], [["acme:1", "y", seen]]]]) == [
        1, 1, 0, 0, "acme:1"]
    assert r.lrange(f"{LANE_PREFIX}acme:1", 0, -1) == ["x"]
    assert r.hget(STATS, "ignored:duplicate") == "1"
    # The record is a field of its hash among slot 7's shards: 16,384, as slot 6 remembered nothing.
    assert r.hget("fe:dedupe:h:7", "s") == "16384" and r.hget("fe:dedupe:h:7", "n") == "1"
    key = dedupe.hash_key(7, seen[2:14], 16384)
    assert r.execute_command("HKEYS", key, NEVER_DECODE=True) == [seen[2:14]]  # the record, and nothing else
    assert 0 < r.ttl(key) <= 3 * 900


def duplicates(r: Any, scripts: Scripts, slot: int, seen: bytes, *, slot_s: int = 900, now_ms: int = 1000) -> int:
    """Hand on one message whose seen argument is `seen` in dedupe slot `slot`: 1 if it was dropped as a
    duplicate, else 0."""
    entry = r.xadd(INCOMING, {"payload": "x"})
    read(r)
    return int(scripts.handoff(keys=[INCOMING, BRIDGE_LEASE, STATS, LANES, INBOXES], args=[
        GROUP, "me", 5000, slot_s, now_ms, LANE_PREFIX, slot, INBOX_PREFIX, entry, INCOMING, 1, "acme:0", "item",
        seen])[1])


def test_handoff_remembers_an_id_for_the_window_and_then_forgets_it(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    seen = dedupe.seen_arg("acme", "wamid.w")
    other = dedupe.seen_arg("other-org", "wamid.w")  # the same id in another org is another message
    def once(slot: int, arg: bytes) -> int:
        return duplicates(r, scripts, slot, arg)
    assert [once(10, seen), once(10, other), once(11, seen), once(12, seen), once(13, seen)] == [0, 0, 1, 1, 0]
    # Ids of the former layout (a key each) still count as seen until they expire, while the bridge
    # knows some are left.
    assert not dedupe.former_keys_left(r)
    r.set(Keys.seen("acme", "wamid.old"), "1")
    assert dedupe.former_keys_left(r)
    assert once(15, dedupe.seen_arg("acme", "wamid.old")) == 1
    assert once(15, dedupe.seen_arg_new("acme", "wamid.old")) == 0
    # And records in the strings of the layout before hashes.
    r.delete(Keys.seen("acme", "wamid.old"))
    assert not dedupe.former_keys_left(r)
    old = dedupe.seen_arg("acme", "wamid.blob")
    r.append(dedupe.key(15, int.from_bytes(old[:2], "big")), old[2:14])
    assert dedupe.former_keys_left(r)
    assert once(16, old) == 1 and once(16, dedupe.seen_arg_new("acme", "wamid.blob")) == 0


def test_handoff_counts_entries_without_events(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    receipt = r.xadd(INCOMING, {"payload": "statuses only"})
    read(r)
    assert handoff(scripts, "me", [[receipt, []]]) == [0, 0, 1, 0]
    assert r.hget(STATS, "ignored:receipt") == "1" and r.xpending(INCOMING, GROUP)["pending"] == 0


def test_handoff_is_fenced_by_the_bridge_lease(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "someone-else")
    entry = r.xadd(INCOMING, {"payload": "a"})
    read(r)
    with pytest.raises(Exception, match="FENCED"):
        handoff(scripts, "me", [[entry, [["acme:0", "item", ""]]]])
    assert r.llen(f"{LANE_PREFIX}acme:0") == 0
    assert r.xpending(INCOMING, GROUP)["pending"] == 1  # still pending: the lease holder hands it on


def test_dead_letter_moves_an_entry_to_the_dlq_once(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    entry = r.xadd(INCOMING, {"payload": "{bad"})
    read(r)
    args = [GROUP, "me", entry, INBOX_PREFIX, "payload", "{bad", "error", "invalid-payload"]
    assert scripts.dead_letter(keys=[INCOMING, DLQ, BRIDGE_LEASE, INCOMING, INBOXES], args=args) == 1
    assert scripts.dead_letter(keys=[INCOMING, DLQ, BRIDGE_LEASE, INCOMING, INBOXES], args=args) == 0
    assert [fields for _id, fields in r.xrange(DLQ)] == [{"payload": "{bad", "error": "invalid-payload"}]


def intake(scripts: Scripts, most_out: int, cursor: str = "0", most_in: int = 5000, most_bytes: int = 1 << 22,
           lanes: int = 4, most_queued: int = 0, most_conversing: int | None = None, now: int = 100_000) -> list[Any]:
    conversing = most_queued if most_conversing is None else most_conversing
    return list(scripts.intake(keys=[INCOMING, BRIDGE_LEASE, INBOXES, CONVERSING],
                               args=[GROUP, "c1", "me", 5000, most_in, 16, INBOX_PREFIX, most_bytes, most_out, cursor,
                                     LANE_PREFIX, lanes, most_queued, conversing, now, 2_000]))


def fetched(reply: list[Any]) -> dict[str, list[str]]:
    """org -> the ids fetched for it, from an intake reply."""
    return {reply[at]: reply[at + 1] for at in range(4, len(reply), 2)}


def test_intake_takes_every_entry_into_its_orgs_inbox_and_fetches_a_share_of_each(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    loud = [r.xadd(INCOMING, {"org_id": "loud", "n": str(n)}) for n in range(30)]
    quiet = r.xadd(INCOMING, {"org_id": "quiet", "n": "q"})
    odd = [r.xadd(INCOMING, {"payload": "no org"}), r.xadd(INCOMING, {"org_id": "x" * 17})]
    reply = intake(scripts, most_out=10)
    assert reply[:4] == [33, odd[-1], "0", 0]  # taken in, the last id, the cursor (all orgs read), none held back
    # A share of 10 // 3 each, in inbox (stream) order; the quiet org's entry is not behind the loud 30.
    assert fetched(reply) == {"": odd, "loud": loud[:3], "quiet": [quiet]}
    assert r.xpending(INCOMING, GROUP)["pending"] == 0  # acknowledged as taken in: nothing pending
    assert r.lrange(f"{INBOX_PREFIX}loud", 0, -1) == loud and r.smembers(INBOXES) == {"", "loud", "quiet"}
    # Nothing is taken out by reading: the next read fetches the same heads (a bridge died meanwhile).
    assert fetched(intake(scripts, most_out=10)) == fetched(reply)


def test_intake_holds_back_an_org_whose_lanes_are_full_and_serves_the_others(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    loud = [r.xadd(INCOMING, {"org_id": "lo:ud", "n": str(n)}) for n in range(30)]
    quiet = r.xadd(INCOMING, {"org_id": "quiet", "n": "q"})
    # The loud org's 4 lanes (its id escaped as in lane ids) hold 12 events, the limit: it gets nothing.
    for n in range(4):
        r.rpush(f"{LANE_PREFIX}lo%3Aud:{n}", "e1", "e2", "e3")
    r.rpush(f"{LANE_PREFIX}quiet:0", *[f"e{n}" for n in range(12)])  # full too, but no backlog: served
    reply = intake(scripts, most_out=10, most_queued=12)
    assert reply[:4] == [31, quiet, "0", 1] and fetched(reply) == {"quiet": [quiet]}
    assert r.lrange(f"{INBOX_PREFIX}lo:ud", 0, -1) == loud  # waiting in its inbox, nothing lost
    r.lpop(f"{LANE_PREFIX}lo%3Aud:2")  # a worker took one: 11 events, room again
    reply = intake(scripts, most_out=10, most_queued=12)
    assert reply[3] == 0 and fetched(reply) == {"lo:ud": loud[:5], "quiet": [quiet]}
    assert fetched(intake(scripts, most_out=10, most_queued=0))["lo:ud"] == loud[:5]  # 0: no limit


def test_intake_holds_back_a_backlog_sooner_while_another_org_is_having_conversations(r: Any,
                                                                                    scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    loud = [r.xadd(INCOMING, {"org_id": "lo:ud", "n": str(n)}) for n in range(30)]
    for n in range(4):
        r.rpush(f"{LANE_PREFIX}lo%3Aud:{n}", "e1", "e2")  # 8 events: under 12, over 6
    r.zadd(CONVERSING, {"lo%3Aud": 98_000})  # its own conversations do not count
    assert fetched(intake(scripts, most_out=10, most_queued=12, most_conversing=6))["lo:ud"] == loud[:10]
    r.zadd(CONVERSING, {"quiet": 97_000})  # another org's, 3 s ago: over
    reply = intake(scripts, most_out=10, most_queued=12, most_conversing=6)
    assert reply[3] == 0 and fetched(reply)["lo:ud"] == loud[:10]
    r.zadd(CONVERSING, {"quiet": 98_500})  # another org's, 1.5 s ago (after its own): the lower bound holds it back
    reply = intake(scripts, most_out=10, most_queued=12, most_conversing=6)
    assert reply[3] == 1 and fetched(reply) == {}
    assert r.lrange(f"{INBOX_PREFIX}lo:ud", 0, -1) == loud  # waiting in its inbox


def test_handoff_takes_entries_out_of_their_inbox_once_and_forgets_an_emptied_inbox(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    first, second = r.xadd(INCOMING, {"org_id": "acme"}), r.xadd(INCOMING, {"org_id": "acme"})
    intake(scripts, most_out=10)
    inbox = f"{INBOX_PREFIX}acme"
    args = [GROUP, "me", 5000, 900, 1000, LANE_PREFIX, 7, INBOX_PREFIX,
            second, inbox, 1, "acme:0", "item-2", "", first, inbox, 1, "acme:0", "item-1", ""]
    assert list(scripts.handoff(keys=[INCOMING, BRIDGE_LEASE, STATS, LANES, INBOXES], args=args)) == [
        2, 0, 0, 0, "acme:0"]
    assert r.exists(inbox) == 0 and r.smembers(INBOXES) == set()
    # Handed on before (a re-read after a crash): skipped.
    assert list(scripts.handoff(keys=[INCOMING, BRIDGE_LEASE, STATS, LANES, INBOXES], args=args)) == [0, 0, 0, 0]
    assert r.lrange(f"{LANE_PREFIX}acme:0", 0, -1) == ["item-2", "item-1"]


def test_intake_serves_many_orgs_a_chunk_a_read_and_every_one_in_turn(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    for org in "abcde":  # a few: every read serves all, one entry each at least
        r.xadd(INCOMING, {"org_id": org})
    assert sorted(fetched(intake(scripts, most_out=2))) == ["a", "b", "c", "d", "e"]
    orgs = [f"org{n}" for n in range(1000)]  # many: a chunk a read, so a read costs the same
    pipe = r.pipeline(transaction=False)
    for org in orgs:
        pipe.xadd(INCOMING, {"org_id": org})
    pipe.execute()
    served: list[str] = []
    reply = intake(scripts, most_out=20)
    assert reply[2] != "0" and len(fetched(reply)) <= 300
    served += fetched(reply)
    while reply[2] != "0":
        reply = intake(scripts, most_out=20, cursor=reply[2])
        assert len(fetched(reply)) <= 300
        served += fetched(reply)
    assert set(served) == set(orgs) | set("abcde")


def test_intake_stops_taking_in_at_its_byte_budget_and_leaves_the_rest_unread(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    for _ in range(250):
        r.xadd(INCOMING, {"org_id": "o", "payload": "x" * 1000})
    reply = intake(scripts, most_out=1, most_bytes=150_000)
    assert reply[0] == 200  # two reads of 100 entries: the budget ran out after the second
    group = r.xinfo_groups(INCOMING)[0]
    assert group["lag"] == 50 and group["pending"] == 0


def test_the_bridge_reads_fetched_ids_from_the_stream_and_an_entry_deleted_since_as_gone(redis_url: str) -> None:
    r: Any = connect(redis_url, decode=False)
    r.flushdb()
    r.xgroup_create(INCOMING, GROUP, id="0", mkstream=True)
    bridge = Bridge(Settings(redis_url=redis_url, group=GROUP), lambda lane, new: None)
    assert bridge.try_lead()
    loud = [r.xadd(INCOMING, {"org_id": "loud", "n": str(n)}) for n in range(3)]
    quiet = r.xadd(INCOMING, {"org_id": "quiet"})
    gone = r.xadd(INCOMING, {"org_id": "loud", "n": "3"})
    r.xdel(INCOMING, gone)
    inboxes = [(b"fe:inbox:loud", [*loud, gone]), (b"fe:inbox:quiet", [quiet])]
    assert bridge.fetch(inboxes) == [
        (loud[0], {b"org_id": b"loud", b"n": b"0"}, b"fe:inbox:loud"),
        (loud[1], {b"org_id": b"loud", b"n": b"1"}, b"fe:inbox:loud"),
        (loud[2], {b"org_id": b"loud", b"n": b"2"}, b"fe:inbox:loud"),
        (gone, None, b"fe:inbox:loud"),  # to the DLQ as gone (bridge/routing.py)
        (quiet, {b"org_id": b"quiet"}, b"fe:inbox:quiet"),  # inside the loud ids' window: found there
    ]
    r.flushdb()


def test_intake_is_fenced_and_idle_it_gives_the_last_delivered_id(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "someone-else")
    entry = r.xadd(INCOMING, {"org_id": "o"})
    with pytest.raises(Exception, match="FENCED"):
        intake(scripts, most_out=5)
    assert r.xinfo_groups(INCOMING)[0]["lag"] == 1
    r.set(BRIDGE_LEASE, "me")
    intake(scripts, most_out=5)
    r.delete(f"{INBOX_PREFIX}o", INBOXES)
    assert intake(scripts, most_out=5) == [0, entry, "0", 0]


def commit(scripts: Scripts, lane: str, token: str, count: int, ops: list[Any], now: int = 5000) -> int:
    return int(scripts.commit(
        keys=[Keys.lane(lane), Keys.lane_lock(lane), Keys.lane_armed(lane), "nf:incoming:scheduled", STATS, LANES],
        args=[token, count, 2000, now, TIMER_WAKE, json.dumps(ops), lane]))


def test_commit_applies_effects_and_trims_only_while_holding_the_lane(r: Any, scripts: Scripts) -> None:
    r.rpush(Keys.lane("o:4"), "e1", "e2", "e3")
    r.sadd(LANES, "o:4")
    r.set(Keys.lane_armed("o:4"), 1)
    r.set(Keys.lane_lock("o:4"), "holder")
    ops = [["x", "nf:outbox", ["to", "1", "text", "hi"]], ["w", "fe:wait:a", "w"], ["z", "2000", "m1"]]
    assert commit(scripts, "o:4", "intruder", 2, ops) == -1  # fenced: nothing happens
    assert r.llen(Keys.lane("o:4")) == 3 and r.xlen("nf:outbox") == 0 and r.zcard("nf:incoming:scheduled") == 0
    assert commit(scripts, "o:4", "holder", 2, ops) == 1
    assert r.lrange(Keys.lane("o:4"), 0, -1) == ["e3"]
    assert [f for _i, f in r.xrange("nf:outbox")] == [{"to": "1", "text": "hi"}]
    assert r.get("fe:wait:a") == "w" and r.zscore("nf:incoming:scheduled", "m1") == 2000
    assert r.get(Keys.lane_armed("o:4")) == "5000" and 0 < r.pttl(Keys.lane_lock("o:4")) <= 2000
    assert r.hget(STATS, "waits") == "1"
    assert commit(scripts, "o:4", "holder", 1, [["u", "fe:wait:a"], ["r", "m1"]]) == 0  # empty: disarmed, unlocked
    assert r.hget(STATS, "waits") == "0"
    assert r.exists(Keys.lane("o:4"), Keys.lane_lock("o:4"), Keys.lane_armed("o:4"), "fe:wait:a") == 0
    assert r.smembers(LANES) == set()  # an empty lane leaves the set of lanes holding events
    assert r.zcard("nf:incoming:scheduled") == 0


def test_commit_holds_and_releases_messages_in_order_with_the_lane_trim(r: Any, scripts: Scripts) -> None:
    held = Keys.held("acme", "ch:1", "521")
    assert held == "fe:held:acme:ch%3A1:521"
    r.rpush(Keys.lane("acme:5"), "m1", "m2", "m3")
    r.set(Keys.lane_lock("acme:5"), "holder")
    hold = [["q", held, "m1"], ["q", held, "m2"]]
    assert commit(scripts, "acme:5", "intruder", 2, hold) == -1  # fenced: nothing is held, nothing trimmed
    assert r.exists(held) == 0 and r.llen(Keys.lane("acme:5")) == 3
    assert commit(scripts, "acme:5", "holder", 2, hold) == 1
    assert r.lrange(held, 0, -1) == ["m1", "m2"] and r.lrange(Keys.lane("acme:5"), 0, -1) == ["m3"]
    assert r.hget(STATS, "held") == "2"  # what `flow-engine status` shows
    # The resume that ends the delay releases the oldest first; a message arriving with it is held behind.
    assert commit(scripts, "acme:5", "holder", 1, [["o", held, 1], ["q", held, "m3"], ["o", held, 1]]) == 0
    assert r.lrange(held, 0, -1) == ["m3"] and r.hget(STATS, "held") == "1"


def test_commit_keeps_the_index_of_contacts_with_an_agent_with_their_wait(r: Any, scripts: Scripts) -> None:
    r.rpush(Keys.lane("acme:1"), "e1", "e2")
    r.set(Keys.lane_lock("acme:1"), "holder")
    member = '["acme","ch","521"]'
    assert commit(scripts, "acme:1", "intruder", 1, [["a", "fe:handoffs", "1000", member]]) == -1
    assert r.zcard("fe:handoffs") == 0
    assert commit(scripts, "acme:1", "holder", 1, [["w", "fe:wait:x", "w"], ["a", "fe:handoffs", "1000", member]]) == 1
    assert r.zrange("fe:handoffs", 0, -1, withscores=True) == [(member, 1000.0)]
    assert commit(scripts, "acme:1", "holder", 1, [["u", "fe:wait:x"], ["b", "fe:handoffs", member]]) == 0
    assert r.zcard("fe:handoffs") == 0 and r.exists("fe:wait:x") == 0


def test_the_source_of_a_release_item_whose_entry_was_trimmed_is_a_control_entry(r: Any) -> None:
    item = lanes.Item("9-0", 0, Release("9-0/0", "acme", "ch", "521"))
    stand_in = lanes.source_fields(r, item)
    assert parse_entry("10-0", stand_in) == [Release("10-0/0", "acme", "ch", "521")]


def test_commit_wakes_the_timer_loop_only_for_an_earlier_timer(r: Any, scripts: Scripts) -> None:
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(TIMER_WAKE)
    pubsub.get_message(timeout=1)
    r.zadd("nf:incoming:scheduled", {"existing": 3000})
    r.rpush(Keys.lane("o:1"), "e")
    r.set(Keys.lane_lock("o:1"), "t")
    commit(scripts, "o:1", "t", 0, [["z", "4000", "later"]])
    assert pubsub.get_message(timeout=0.2) is None
    commit(scripts, "o:1", "t", 0, [["z", "2500", "earlier"]])
    message = pubsub.get_message(timeout=1)
    assert message is not None and message["data"] == "2500"
    pubsub.close()


def test_pop_due_publishes_each_due_timer_once_with_its_lateness_and_signature(r: Any, scripts: Scripts) -> None:
    secret = load_secret(r)
    timers = [Timer(f"t{n}", 1000 + n * 100, "acme", "ch", f"52{n}", f"run{n}", "timeout") for n in range(3)]
    r.zadd("nf:incoming:scheduled", {t.member(): t.due_ms for t in timers})
    result = scripts.pop_due(keys=["nf:incoming:scheduled", INCOMING, SECRET], args=[1150, 1000])
    assert [int(x) for x in result[:1]] == [2] and int(result[1]) == 1200
    assert [int(x) for x in result[2:]] == [150, 50]
    published = [fields for _id, fields in r.xrange(INCOMING)]
    assert published == [{**t.resume_fields(), "sig": resume_sig(secret, t.member())} for t in timers[:2]]
    assert all(resume_signed(secret, {k.encode(): v.encode() for k, v in fields.items()}) for fields in published)
    forged = {k.encode(): v.encode() for k, v in timers[2].resume_fields().items()}
    assert not resume_signed(secret, forged)
    assert not resume_signed(secret, {**forged, b"sig": resume_sig(b"guessed", timers[2].member()).encode()})
    again = scripts.pop_due(keys=["nf:incoming:scheduled", INCOMING, SECRET], args=[1150, 1000])
    assert int(again[0]) == 0 and r.xlen(INCOMING) == 2


def test_pop_due_publishes_nothing_without_the_engine_secret(r: Any, scripts: Scripts) -> None:
    r.zadd("nf:incoming:scheduled", {Timer("t", 1000, "acme", "ch", "52", "run", "delay").member(): 1000})
    with pytest.raises(redis.ResponseError, match="NOSECRET"):
        scripts.pop_due(keys=["nf:incoming:scheduled", INCOMING, SECRET], args=[1150, 1000])
    assert r.xlen(INCOMING) == 0 and r.zcard("nf:incoming:scheduled") == 1


def test_sweep_rearms_lanes_with_events_and_no_live_worker(r: Any, scripts: Scripts) -> None:
    r.rpush(Keys.lane("o:0"), "e")  # never armed: a bridge died between push and enqueue
    r.rpush(Keys.lane("o:1"), "e")
    r.set(Keys.lane_armed("o:1"), 9_500)  # armed recently: its task may still be on its way
    r.rpush(Keys.lane("o:2"), "e")
    r.set(Keys.lane_armed("o:2"), 1_000)  # armed long ago, no holder
    r.rpush(Keys.lane("o:3"), "e")
    r.set(Keys.lane_armed("o:3"), 1_000)
    r.set(Keys.lane_lock("o:3"), "alive")  # a worker holds it
    r.sadd(LANES, "o:0", "o:1", "o:2", "o:3", "o:4")  # o:4 emptied meanwhile: dropped from the set
    assert sorted(scripts.sweep(keys=[LANES], args=[LANE_PREFIX, 10_000, 1_000])) == ["o:0", "o:2"]
    assert r.get(Keys.lane_armed("o:0")) == "10000"
    assert r.smembers(LANES) == {"o:0", "o:1", "o:2", "o:3"}


def test_lane_items_carry_the_parsed_event_and_where_it_came_from() -> None:
    message = Message("1-0/2", "acme", "ch", "521", "ñandú", "Ana", "wamid.1", None, "text")
    resume = Timer("tok", 5, "acme", "ch", "521", "run", "delay").resume()
    ttl = Timer("tok", 5, "acme", "ch", "521", "run", "handoff").resume()
    release = Release("1-0/0", "acme", "ch", "521")
    for event in (message, resume, ttl, release):
        assert lanes.decode(lanes.encode("1-0", 2, event)) == lanes.Item("1-0", 2, event)


def test_the_source_of_a_lane_item_is_its_stream_entry(r: Any) -> None:
    entry_id = r.xadd(INCOMING, {"org_id": "acme", "payload": "{}"})
    item = lanes.Item(entry_id, 0, Message(f"{entry_id}/0", "acme", "ch", "521", "ñ x", "Ana", "wamid.7"))
    assert lanes.source_fields(r, item) == {"org_id": "acme", "payload": "{}"}
    r.xdel(INCOMING, entry_id)  # trimmed: a stand-in that replays the same message
    stand_in = lanes.source_fields(r, item)
    assert stand_in == {"org_id": "acme", "channel_id": "ch", "trimmed": "original entry no longer in stream",
                        "payload": '{"text": "ñ x", "contact": {"phone": "521", "name": "Ana"}, "id": "wamid.7"}'}
    assert parse_entry("2-0", stand_in) == [Message("2-0/0", "acme", "ch", "521", "ñ x", "Ana", "wamid.7")]


def test_a_slot_has_shards_for_the_ids_its_predecessor_remembered_and_looks_up_in_three_slots(
        r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    r.hset("fe:dedupe:h:40", mapping={"s": 16384, "n": 1_000_000})

    def once(slot: int, arg: bytes) -> int:
        return duplicates(r, scripts, slot, arg)
    seen = dedupe.seen_arg_new("acme", "wamid.sized")
    assert once(41, seen) == 0
    assert r.hget("fe:dedupe:h:41", "s") == str(1_000_000 // 32)  # 32 ids a hash at the same rate
    assert r.execute_command("HEXISTS", dedupe.hash_key(41, seen[2:14], 1_000_000 // 32), seen[2:14]) == 1
    assert [once(42, seen), once(43, seen), once(44, seen)] == [1, 1, 0]  # slots 41..43 look in 41
    assert r.hget("fe:dedupe:h:42", "s") == "16384"  # slot 41 remembered 1 id: the fewest shards


def test_commit_forgets_a_message_id_so_it_can_be_published_again(r: Any, scripts: Scripts) -> None:
    r.set(BRIDGE_LEASE, "me")
    now_ms = 1_000_000_000
    slot = now_ms // 1000 // dedupe.slot_s(172_800)
    arg, neighbour = dedupe.seen_arg("acme", "wamid.dlq"), dedupe.seen_arg("acme", "wamid.kept")

    def duplicate(seen: bytes) -> int:
        return duplicates(r, scripts, slot, seen, slot_s=dedupe.slot_s(172_800), now_ms=now_ms)
    assert [duplicate(arg), duplicate(neighbour), duplicate(arg)] == [0, 0, 1]
    r.set(Keys.lane_lock("acme:0"), "t")
    assert commit(scripts, "acme:0", "t", 0, dedupe.forget_ops("acme", "wamid.dlq", now_ms, 172_800)) > 0
    assert [duplicate(arg), duplicate(neighbour)] == [0, 1]  # forgotten, and only it
