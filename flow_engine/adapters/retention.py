"""Bounded streams: what the engine trims, and what it never does (see lua/trim.lua for the rule).

- nf:incoming: entries older than FLOW_ENGINE_STREAM_RETENTION_S that every consumer group has
  acknowledged (the engine's and any other service's), that no org's inbox still lists and that no
  lane still holds an event of.
- nf:outbox, nf:webhooks: the same rule for their consumers (the gateway, the dispatcher); without a
  consumer group, the newest FLOW_ENGINE_STREAM_MAXLEN entries are kept (0: never trimmed).
- nf:incoming:dlq: never; it is the operators' queue (`flow-engine dlq purge`).
"""

from __future__ import annotations

from flow_engine.adapters.keys import INBOX_PREFIX, INBOXES, INCOMING, LANE_PREFIX, LANES, OUTBOX, WEBHOOKS
from flow_engine.adapters.scripts import RedisClient, Scripts

TRIMMED_STREAMS = (INCOMING, OUTBOX, WEBHOOKS)
# An approximate XTRIM removes at most 10,000 entries a call (Redis's default LIMIT: 100 times
# stream-node-max-entries), which keeps each call short; a trim calls again while a call removes any,
# up to this many times: at the default period (10 s) one call a period trimmed at most 1,000 entries
# a second, fewer than a sustained 1,000 messages a second and their timers add.
TRIM_CALLS = 100


def trim_streams(scripts: Scripts, now_ms: int, *, retention_s: int, maxlen: int) -> dict[str, int]:
    """Trim each stream the engine owns or writes; returns the entries removed per stream."""
    cutoff = f"{max(now_ms - retention_s * 1000, 0)}-0"
    removed = {}
    for stream in TRIMMED_STREAMS:
        lane_heads = "1" if stream == INCOMING else "0"
        removed[stream] = 0
        for _ in range(TRIM_CALLS):
            count = int(scripts.trim(keys=[stream, LANES, INBOXES], args=[cutoff, maxlen, LANE_PREFIX, lane_heads,
                                                                          INBOX_PREFIX])[0])
            removed[stream] += count
            if not count:
                break
    return removed


def stream_facts(client: RedisClient, streams: tuple[str, ...], now_ms: int) -> dict[str, dict[str, int | None]]:
    """Length, memory (bytes) and the age of the oldest entry (ms) of each stream."""
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xlen(stream)
        pipe.memory_usage(stream, samples=0)
        pipe.xrange(stream, count=1)
    replies = pipe.execute(raise_on_error=False)
    facts: dict[str, dict[str, int | None]] = {}
    for index, stream in enumerate(streams):
        length, memory, first = replies[3 * index: 3 * index + 3]
        oldest = None
        if isinstance(first, list) and first:
            first_id = first[0][0]
            first_id = first_id.decode() if isinstance(first_id, bytes) else first_id
            oldest = max(now_ms - int(first_id.split("-", 1)[0]), 0)
        facts[stream] = {"length": int(length) if isinstance(length, int) else 0,
                         "memory_bytes": int(memory) if isinstance(memory, int) else 0, "oldest_age_ms": oldest}
    return facts
