"""Duplicate detection of WhatsApp message ids in about 12 bytes an id (a key per id cost ~150).

A message id is remembered as a 12-byte record: the blake2b digest of (org, message id). Records are
appended to strings `fe:dedupe:{slot}:{shard}`: `slot` is a quarter of FLOW_ENGINE_DEDUPE_TTL_S of
time, `shard` one of 16,384 by the digest, so a string holds a few thousand records at most even at
1,000 messages a second, and a look-up reads 5 short strings (the slots that cover the window). A
slot's strings expire as a whole, 5 slots after they were started: an id is remembered for between
the window and 1.25 times it.

Exact in practice: a new id is taken for a duplicate only if its 96-bit digest equals that of an id
of the same shard in the window (odds below 1e-19 per message at 1,000 messages a second).

Until FLOW_ENGINE_DEDUPE_TTL_S has passed after an upgrade, the per-id keys of the former layout
(`fe:seen:{org}:{id}`, Keys.seen) are checked too, so no redelivery slips through the switch.
"""

from __future__ import annotations

from hashlib import blake2b

from flow_engine.adapters.keys import Keys

SHARDS = 16_384
RECORD_BYTES = 12
SLOTS_PER_WINDOW = 4
DEDUPE_PREFIX = "fe:dedupe:"


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


def seen_arg(org_id: str, wa_message_id: str) -> bytes:
    """The hand-off script's argument for one message id: 2 bytes of shard, the 12-byte record, then
    the former per-id key to check as well."""
    material = b"".join(len(part).to_bytes(4, "big") + part for part in (org_id.encode(), wa_message_id.encode()))
    digest = blake2b(material, digest_size=RECORD_BYTES, person=b"fe-dedupe").digest()
    shard = int.from_bytes(digest[:2], "big") % SHARDS
    return shard.to_bytes(2, "big") + digest + Keys.seen(org_id, wa_message_id).encode()
