"""The "dedupe" benchmark: Redis time of the hand-off script per message as the dedupe window fills.

Each round: the 3 slots a look-up reads get 64 shards each (the script's sizing bypassed), every
hash holds K random 12-byte records, then BENCH_DEDUPE_MESSAGES (default 2,000) new message ids are
handed on through lua/handoff.lua in calls of 200, as the bridge does (each entry read through the
group first). Reported: the script's time per message from `INFO commandstats` (EVALSHA usec), for
K = 0, 32 (the steady state the sizing aims at), 128 and 500 ids a hash, and the hashes' encoding
at the largest K. The window's size does not matter otherwise: each look-up reads one hash a slot.

Redis database BENCH_DEDUPE_REDIS_DB (default 4) of BENCH_REDIS_URL is flushed.
Target: at most 3 times the time with empty hashes at 32 ids a hash (a look-up stays constant).
"""

from __future__ import annotations

import os
from typing import Any

import redis

from flow_engine.adapters import dedupe
from flow_engine.adapters.keys import BRIDGE_LEASE, INBOX_PREFIX, INBOXES, INCOMING, LANE_PREFIX, LANES, STATS
from flow_engine.adapters.scripts import Scripts

SHARDS = 64
SLOT = 1000
SLOT_S = 900
CALL_MESSAGES = 200
IDS_PER_HASH = (0, 32, 128, 500)
TARGET_RATIO = 3.0


def _evalsha_usec(client: Any) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0))


def _round(client: Any, scripts: Scripts, per_hash: int, messages: int) -> float:
    client.flushdb()
    client.xgroup_create(INCOMING, "g", id="0", mkstream=True)
    client.set(BRIDGE_LEASE, "me")
    for slot in (SLOT - 2, SLOT - 1, SLOT):
        client.hset(f"{dedupe.HASH_PREFIX}{slot}", "s", SHARDS)
        if per_hash:
            pipe = client.pipeline(transaction=False)
            for shard in range(SHARDS):
                pipe.hset(f"{dedupe.HASH_PREFIX}{slot}:{shard}", mapping={os.urandom(12): "" for _ in range(per_hash)})
            pipe.execute()
    seen = [dedupe.seen_arg_new("acme", f"wamid.bench.{n}") for n in range(messages)]
    pipe = client.pipeline(transaction=False)
    for _ in seen:
        pipe.xadd(INCOMING, {"x": "1"})
    ids = pipe.execute()
    client.xreadgroup("g", "c", {INCOMING: ">"}, count=len(ids))
    before = _evalsha_usec(client)
    for start in range(0, messages, CALL_MESSAGES):
        flat: list[Any] = []
        for entry, arg in zip(ids[start:start + CALL_MESSAGES], seen[start:start + CALL_MESSAGES], strict=True):
            flat += [entry, INCOMING, 1, "acme:0", "item", arg]
        scripts.handoff(keys=[INCOMING, BRIDGE_LEASE, STATS, LANES, INBOXES],
                        args=["g", "me", 5000, SLOT_S, 1000, LANE_PREFIX, SLOT, INBOX_PREFIX, *flat])
    return (_evalsha_usec(client) - before) / messages


def run() -> dict[str, Any]:
    messages = int(os.environ.get("BENCH_DEDUPE_MESSAGES", "2000"))
    base = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
    client = redis.Redis.from_url(f"{base}/{int(os.environ.get('BENCH_DEDUPE_REDIS_DB', '4'))}")
    try:
        scripts = Scripts(client)
        per_message = {k: _round(client, scripts, k, messages) for k in IDS_PER_HASH}
        encoding = client.object("encoding", f"{dedupe.HASH_PREFIX}{SLOT}:0")
        client.flushdb()
    finally:
        client.close()
    ratio = per_message[32] / max(per_message[0], 1e-9)
    passed = ratio <= TARGET_RATIO
    figures = ", ".join(f"{k} ids a hash {us:.1f} µs" for k, us in per_message.items())
    return {
        "summary": f"dedupe: hand-off Redis time a message with {figures} ({encoding!r} at {IDS_PER_HASH[-1]}); "
                   f"32 / empty {ratio:.2f} ({'PASS' if passed else 'FAIL'} <= {TARGET_RATIO:.0f})",
        "passed": passed,
        "messages": messages,
        "usec_per_message": per_message,
        "encoding_at_largest": str(encoding),
    }
