"""Duplicate detection of WhatsApp message ids in about 12 bytes an id (a key per id cost ~150).

A message id is remembered as a 12-byte record: the blake2b digest of (org, message id). Records are
appended to strings `fe:dedupe:{slot}:{shard}`: `slot` is half of FLOW_ENGINE_DEDUPE_TTL_S of time,
`shard` one of 16,384 by the digest, so a string holds a few thousand records at most even at 1,000
messages a second, and a look-up reads 3 short strings (the slots that cover the window). A slot's
strings expire as a whole, 3 slots after they were started: an id is remembered for between the
window and 1.5 times it.

Exact in practice: a new id is taken for a duplicate only if its 96-bit digest equals that of an id
of the same shard in the window (odds below 1e-19 per message at 1,000 messages a second).

While per-id keys of the former layout (`fe:seen:{org}:{id}`, Keys.seen) exist, for
FLOW_ENGINE_DEDUPE_TTL_S after an upgrade, they are checked too, so no redelivery slips through the
switch; the bridge looks for them at start and every 10 minutes, and skips the check once none is left.
"""

from __future__ import annotations

from hashlib import blake2b

from flow_engine.adapters.keys import DEDUPE_PREFIX, FORMER_SEEN_KEYS, Keys
from flow_engine.adapters.scripts import RedisClient

SHARDS = 16_384
RECORD_BYTES = 12
SLOTS_PER_WINDOW = 2  # lua/handoff.lua reads slots s-2..s and keeps a slot for 3 slots
FORMER_KEYS = FORMER_SEEN_KEYS


def slot_s(ttl_s: int) -> int:
    """How long one slot of records lasts."""
    return max(ttl_s // SLOTS_PER_WINDOW, 1)


def forget_ops(org_id: str, wa_message_id: str, now_ms: int, ttl_s: int) -> list[list[object]]:
    """Commit-script ops (lua/commit.lua) that make a message id unseen again: its record leaves the
    slots that may hold it, and a key of the former layout is deleted."""
    arg = seen_arg(org_id, wa_message_id)
    slot = now_ms // 1000 // slot_s(ttl_s)
    shard = int.from_bytes(arg[:2], "big")
    return [["f", str(shard), arg[2:14].hex(), slot - SLOTS_PER_WINDOW, slot], ["d", arg[14:].decode()]]


def key(slot: int, shard: int) -> str:
    """The string of records of one slot and shard (lua/handoff.lua builds the same name)."""
    return f"{DEDUPE_PREFIX}{slot}:{shard}"


def seen_arg(org_id: str, wa_message_id: str, *, former: bool = True) -> bytes:
    """The hand-off script's argument for one message id: 2 bytes of shard, the 12-byte record, then
    (with `former`) the per-id key of the former layout to check as well."""
    material = f"{len(org_id)}:{org_id}{wa_message_id}".encode()  # length-prefixed: no two pairs alike
    digest = blake2b(material, digest_size=RECORD_BYTES, person=b"fe-dedupe").digest()
    shard = int.from_bytes(digest[:2], "big") % SHARDS
    arg = shard.to_bytes(2, "big") + digest
    return arg + Keys.seen(org_id, wa_message_id).encode() if former else arg


def seen_arg_new(org_id: str, wa_message_id: str) -> bytes:
    """`seen_arg` once no key of the former layout is left."""
    return seen_arg(org_id, wa_message_id, former=False)


def former_keys_left(client: RedisClient) -> bool:
    """Whether any per-id key of the former layout is left (a scan of the keyspace, at most once in a
    while: they all expire within FLOW_ENGINE_DEDUPE_TTL_S of the upgrade)."""
    return next(iter(client.scan_iter(FORMER_KEYS, count=10_000)), None) is not None
