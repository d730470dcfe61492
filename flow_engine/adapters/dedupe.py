"""Duplicate detection of WhatsApp message ids in about 20 bytes an id (a key per id cost ~150), each
look-up a few native hash look-ups whatever the number of ids remembered.

A message id is remembered as a 12-byte record: the blake2b digest of (org, message id), a field of a
small hash `fe:dedupe:h:{slot}:{shard}`: `slot` is half of FLOW_ENGINE_DEDUPE_TTL_S of time, `shard`
the record's first 4 bytes modulo the slot's shard count. A slot's shard count is fixed when the slot
starts (hash `fe:dedupe:h:{slot}`, field `s`), from the ids the slot before remembered (field `n`):
about 32 ids a hash at the same rate, 16,384 to 4,194,304 shards (16,384 after a slot that remembered
nothing: 32 a hash at 6 messages a second with the default TTL). A look-up checks the hashes of the 3
slots that cover the window (HEXISTS: a scan of a small listpack; 5-8 µs of Redis a message with the
rest of the hand-off). Up to Redis's hash-max-listpack-entries (128 by default) ids a hash take ~16
bytes each; a slot whose traffic outgrows its predecessor's that much holds hash tables (~60 bytes an
id, look-ups still constant), and the next slot has more shards. A slot's hashes expire 3 slots after
it started: an id is remembered for between the window and 1.5 times it.

Exact in practice: a new id is taken for a duplicate only if its 96-bit digest equals that of an id
in the window (odds below 1e-19 per message at 1,000 messages a second).

Two former layouts are checked too while the bridge finds any of their keys (at start and every 10
minutes; all expire within 1.5 times FLOW_ENGINE_DEDUPE_TTL_S of the upgrade), so no redelivery slips
through the switch: per-id keys `fe:seen:{org}:{id}` (Keys.seen), and strings of appended records
`fe:dedupe:{slot}:{shard}` (16,384 shards), whose look-ups copied every record of the shard into the
script: at a sustained 1,000 messages a second, 300 µs of Redis a message once the window filled.
"""

from __future__ import annotations

from hashlib import blake2b

from flow_engine.adapters.keys import DEDUPE_PREFIX, FORMER_SEEN_KEYS, Keys
from flow_engine.adapters.scripts import RedisClient

SHARDS = 16_384  # of the former strings (the first 2 bytes of a seen argument)
RECORD_BYTES = 12
HASH_PREFIX = f"{DEDUPE_PREFIX}h:"  # fe:dedupe:h:{slot} (its shard count, ids), fe:dedupe:h:{slot}:{shard}
FORMER_RECORD_KEYS = f"{DEDUPE_PREFIX}[0-9]*"  # the former strings fe:dedupe:{slot}:{shard}
SLOTS_PER_WINDOW = 2  # lua/handoff.lua reads slots s-2..s and keeps a slot for 3 slots
FORMER_KEYS = FORMER_SEEN_KEYS


def slot_s(ttl_s: int) -> int:
    """How long one slot of records lasts."""
    return max(ttl_s // SLOTS_PER_WINDOW, 1)


def forget_ops(org_id: str, wa_message_id: str, now_ms: int, ttl_s: int) -> list[list[object]]:
    """Commit-script ops (lua/commit.lua) that make a message id unseen again: its record leaves the
    slots that may hold it (and the former strings), and a key of the former layout is deleted."""
    arg = seen_arg(org_id, wa_message_id)
    slot = now_ms // 1000 // slot_s(ttl_s)
    shard = int.from_bytes(arg[:2], "big")
    return [["f", str(shard), arg[2:14].hex(), slot - SLOTS_PER_WINDOW, slot], ["d", arg[14:].decode()]]


def key(slot: int, shard: int) -> str:
    """The former string of records of one slot and shard (lua/handoff.lua builds the same name)."""
    return f"{DEDUPE_PREFIX}{slot}:{shard}"


def hash_key(slot: int, record: bytes, shards: int) -> str:
    """The hash that remembers `record` in a slot of `shards` shards (lua/handoff.lua builds the same)."""
    return f"{HASH_PREFIX}{slot}:{int.from_bytes(record[:4], 'big') % shards}"


def seen_arg(org_id: str, wa_message_id: str, *, former: bool = True) -> bytes:
    """The hand-off script's argument for one message id: 2 bytes of the former strings' shard, the
    12-byte record, then (with `former`) the per-id key of the former layout: the former layouts are
    checked as well."""
    material = f"{len(org_id)}:{org_id}{wa_message_id}".encode()  # length-prefixed: no two pairs alike
    digest = blake2b(material, digest_size=RECORD_BYTES, person=b"fe-dedupe").digest()
    shard = int.from_bytes(digest[:2], "big") % SHARDS
    arg = shard.to_bytes(2, "big") + digest
    return arg + Keys.seen(org_id, wa_message_id).encode() if former else arg


def seen_arg_new(org_id: str, wa_message_id: str) -> bytes:
    """`seen_arg` once no key of the former layout is left."""
    return seen_arg(org_id, wa_message_id, former=False)


def former_keys_left(client: RedisClient) -> bool:
    """Whether any key of the former layouts is left (scans of the keyspace, at most once in a while:
    they all expire within 1.5 times FLOW_ENGINE_DEDUPE_TTL_S of the upgrade)."""
    return any(next(iter(client.scan_iter(pattern, count=10_000)), None) is not None
               for pattern in (FORMER_KEYS, FORMER_RECORD_KEYS))
