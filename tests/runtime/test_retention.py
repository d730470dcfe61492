"""Bounded streams: the trim script removes only what every consumer group has acknowledged, what is
older than the retention and what no lane still needs; and the running engine trims by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from flow_engine.adapters import dedupe
from flow_engine.adapters.keys import INBOX_PREFIX, INBOXES, INCOMING, LANE_PREFIX, LANES, OUTBOX, Keys
from flow_engine.adapters.retention import trim_streams
from flow_engine.adapters.scripts import Scripts, connect
from tests.devstack import Stack
from tests.runtime.conftest import new_org

FAR_FUTURE = "99999999999999-0"  # retention already over for every entry


@pytest.fixture
def r(redis_url: str) -> Iterator[Any]:
    client = connect(redis_url)
    client.flushdb()
    yield client
    client.flushdb()


def trim(r: Any, stream: str, *, cutoff: str = FAR_FUTURE, maxlen: int = 0, lanes: bool = False) -> int:
    return int(Scripts(r).trim(keys=[stream, LANES, INBOXES],
                               args=[cutoff, maxlen, LANE_PREFIX, "1" if lanes else "0", INBOX_PREFIX])[0])


def fill(r: Any, stream: str, count: int) -> list[str]:
    pipe = r.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd(stream, {"n": str(n)})
    return [str(entry_id) for entry_id in pipe.execute()]


def test_a_lagging_consumer_group_keeps_what_it_has_not_read_or_acknowledged(r: Any) -> None:
    ids = fill(r, OUTBOX, 1000)
    r.xgroup_create(OUTBOX, "gateway", id="0")
    r.xgroup_create(OUTBOX, "audit", id="0")
    r.xreadgroup("gateway", "g1", {OUTBOX: ">"}, count=800)
    r.xack(OUTBOX, "gateway", *ids[:700])  # 700..799 read but pending
    r.xreadgroup("audit", "a1", {OUTBOX: ">"}, count=900)
    r.xack(OUTBOX, "audit", *ids[:900])
    removed = trim(r, OUTBOX)
    left = [entry_id for entry_id, _ in r.xrange(OUTBOX)]
    assert left[-300:] == ids[700:]  # everything from the gateway's oldest pending entry on
    assert 600 <= removed == 1000 - len(left) <= 700  # whole nodes of 100 below it
    assert trim(r, OUTBOX, cutoff=ids[0]) == 0  # nothing is older than the retention


def test_an_unread_entry_a_pending_one_and_a_lane_head_stay(r: Any) -> None:
    ids = fill(r, INCOMING, 1000)
    r.xgroup_create(INCOMING, "engine", id="0")
    r.xreadgroup("engine", "bridge0", {INCOMING: ">"}, count=600)  # a bridge killed mid-batch: all pending
    r.xack(INCOMING, "engine", *ids[:550])
    assert len(r.xrange(INCOMING, min=ids[550])) == 450
    removed = trim(r, INCOMING, lanes=True)
    assert r.xrange(INCOMING, min=ids[550], max=ids[550]) and 400 <= removed <= 550
    # A lane still holds an event of entry 120 (acked at hand-off, not yet processed): it stays.
    fresh = fill(r, INCOMING, 1000)
    r.xreadgroup("engine", "bridge0", {INCOMING: ">"}, count=2000)
    r.xack(INCOMING, "engine", *ids[550:], *fresh)
    lane = Keys.lane_id("acme", 3)
    r.rpush(Keys.lane(lane), f'["{fresh[120]}",0,["m"]]')
    r.sadd(LANES, lane)
    # And an org's inbox still lists entry 60 (taken in, not yet handed on: the bridge reads its
    # fields from the stream then): it stays too.
    r.rpush(f"{INBOX_PREFIX}acme", fresh[60], fresh[61])
    r.sadd(INBOXES, "acme")
    trim(r, INCOMING, lanes=True)
    assert [entry_id for entry_id, _ in r.xrange(INCOMING)][-940:] == fresh[60:]
    r.delete(f"{INBOX_PREFIX}acme")  # handed on
    trim(r, INCOMING, lanes=True)
    assert [entry_id for entry_id, _ in r.xrange(INCOMING)][-880:] == fresh[120:]


def test_a_stream_without_consumer_groups_keeps_its_newest_maxlen_entries(r: Any) -> None:
    ids = fill(r, OUTBOX, 1000)
    assert trim(r, OUTBOX, maxlen=0) == 0  # 0: never trimmed
    removed = trim(r, OUTBOX, maxlen=300)
    left = [entry_id for entry_id, _ in r.xrange(OUTBOX)]
    assert left[-300:] == ids[-300:] and 600 <= removed <= 700


def test_one_trim_removes_more_than_an_approximate_xtrim_takes_at_a_time(r: Any) -> None:
    """Redis caps an approximate XTRIM at 10,000 entries a call; a trim (retention.trim_streams) calls
    again while a call removes any, so a backlog's worth goes at once."""
    ids = [entry for _ in range(5) for entry in fill(r, OUTBOX, 5_000)]
    r.xgroup_create(OUTBOX, "gateway", id="0")
    r.xreadgroup("gateway", "g1", {OUTBOX: ">"}, count=30_000)
    r.xack(OUTBOX, "gateway", *ids[:24_950])
    assert trim(r, OUTBOX) == 10_000  # one call: Redis's cap
    removed = trim_streams(Scripts(r), 99_999_999_999_999, retention_s=1, maxlen=0)
    left = [entry_id for entry_id, _ in r.xrange(OUTBOX)]
    assert left[-50:] == ids[-50:] and len(left) <= 150  # whole nodes of 100 below the first pending
    assert removed[OUTBOX] == 25_000 - 10_000 - len(left)


@pytest.fixture(scope="module")
def short_retention(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(redis_url, database_url, tmp_path_factory.mktemp("logs"), env={
        "FLOW_ENGINE_STREAM_RETENTION_S": "1", "FLOW_ENGINE_TRIM_EVERY_MS": "500"})
    s.start()
    yield s
    s.stop()


def test_the_running_engine_trims_its_streams_but_not_for_a_slow_reader(short_retention: Stack) -> None:
    stack = short_retention
    stack.redis.xgroup_create(OUTBOX, "gateway", id="0", mkstream=True)
    org = new_org()
    stack.load_flow(org, {"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "eco"}]}})
    pipe = stack.redis.pipeline(transaction=False)
    for n in range(1500):
        stack.send_later(pipe, org, f"5219{n % 300:06d}", f"m{n}")
    pipe.execute()
    stack.wait_outbox(org, 1500, timeout_s=60)
    stack.settled()
    first_read = stack.redis.xreadgroup("gateway", "g1", {OUTBOX: ">"}, count=200)[0][1]  # a slow gateway
    stack.redis.xack(OUTBOX, "gateway", *(entry_id for entry_id, _ in first_read))
    time.sleep(1.5)  # older than the retention
    stack.wait_until(lambda: stack.redis.xlen(INCOMING) < 1000, 20, "nf:incoming to be trimmed")
    unread = stack.redis.xreadgroup("gateway", "g1", {OUTBOX: ">"}, count=5000)[0][1]
    assert len(first_read) + len(unread) == 1500  # the gateway still gets every answer
    assert stack.redis.xlen(OUTBOX) >= 1300


def test_a_million_remembered_message_ids_cost_at_most_40_bytes_each(r: Any) -> None:
    """The layout the hand-off script writes (adapters/dedupe.py), a slot filled with a million ids at
    the rate of the slot before (which fixed its shard count: lua/handoff.lua)."""
    ids = 1_000_000
    shards = -(-ids // 32)
    keys: set[str] = set()
    for start in range(0, ids, 20_000):
        pipe = r.pipeline(transaction=False)
        for n in range(start, start + 20_000):
            record = dedupe.seen_arg(f"org-{n % 7}", f"wamid.HBgLMTIzNDU2Nzg5MDEVAgASGBQz{n:012d}")[2:14]
            key = dedupe.hash_key(100, record, shards)
            keys.add(key)
            pipe.hset(key, record, "")
        pipe.execute()
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    used = sum(pipe.execute())
    assert len(keys) == shards
    assert used / ids <= 40, used / ids
    print("dedupe:", {"ids": ids, "bytes": used, "bytes_per_id": round(used / ids, 1)})
