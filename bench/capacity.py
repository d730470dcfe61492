"""Capacity: Redis memory under sustained load, and what stays behind per processed message.

BENCH_CAPACITY_MESSAGES (300,000) WhatsApp messages of the shop demo mix (bench/workload.py's plan) are
written at a steady BENCH_CAPACITY_RATE (3,000) per second to the usual stack, with retention set
short (FLOW_ENGINE_STREAM_RETENTION_S=BENCH_CAPACITY_RETENTION_S, 5; trimming every second; no consumer
group reads the outputs, so FLOW_ENGINE_STREAM_MAXLEN=BENCH_CAPACITY_MAXLEN, 1,000, bounds them).
Redis's used_memory is read at the start, at every 10 % sent and at the end, after the run settles
(every message answered, every delay resumed, a retention period and two trims later). Retained per
processed message: (end - start - the dedupe window) / messages. The dedupe window (a record per
message id, kept for FLOW_ENGINE_DEDUPE_TTL_S) is what the engine must remember; it is reported
apart, measured whole as the used_memory given back when its keys are deleted at the very end (its
records alone, by MEMORY USAGE, are reported too). Every key's MEMORY USAGE by family, at the start
and the end, is in the JSON.
Target (issue 14): end within 10 % of start plus the dedupe window, plus what the output streams hold
at their bound (FLOW_ENGINE_STREAM_MAXLEN entries each, 0.6 MiB here: an engine that runs
keeps them full, and on a fresh Redis of ~3 MiB they are more than its 10 %), which they must not
pass (their lengths are checked, with the slack of an approximate trim).
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.stack import DRAIN_POLL_S, fresh_stack, wait_for
from bench.workload import message_plan, webhook_fields
from flow_engine import ops
from flow_engine import settings as settings_module
from flow_engine.adapters.keys import DEDUPE_PREFIX, INCOMING, OUTBOX, WEBHOOKS


def _used(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def _families(client: Any) -> dict[str, list[int]]:
    """Every key's MEMORY USAGE summed by family (its name up to the second `:`): [keys, bytes]."""
    families: dict[str, list[int]] = {}
    keys = list(client.scan_iter(count=5_000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    for key, size in zip(keys, pipe.execute(), strict=True):
        family = ":".join(key.split(":")[:2])
        entry = families.setdefault(family, [0, 0])
        entry[0] += 1
        entry[1] += size or 0
    return families


def _dedupe_window_bytes(client: Any) -> int:
    """What the dedupe window holds, all in: used_memory given back when its keys are deleted (the run's
    last act). MEMORY USAGE counts a key's value, name and entry in the keyspace, not what its expiry
    costs (an entry in the expires table) nor the two tables' slots: ~70 B more a key, 16,385 keys here.
    (The warm-up's few ids are in the start and counted here again: a few KB.)"""
    keys = list(client.scan_iter(f"{DEDUPE_PREFIX}*", count=5_000))
    used_bytes = _used(client)  # just before: the rest of the server drifts meanwhile
    for start in range(0, len(keys), 1_000):
        client.delete(*keys[start:start + 1_000])
    time.sleep(1.0)  # Redis shrinks its key tables in its cron (10 times a second)
    return used_bytes - _used(client)


def run() -> dict[str, Any]:
    n = int(os.environ.get("BENCH_CAPACITY_MESSAGES", "300000"))
    rate = int(os.environ.get("BENCH_CAPACITY_RATE", "3000"))
    retention_s = int(os.environ.get("BENCH_CAPACITY_RETENTION_S", "5"))
    maxlen = int(os.environ.get("BENCH_CAPACITY_MAXLEN", "1000"))
    env = {"FLOW_ENGINE_STREAM_RETENTION_S": str(retention_s), "FLOW_ENGINE_TRIM_EVERY_MS": "1000",
           "FLOW_ENGINE_STREAM_MAXLEN": str(maxlen)}
    plan = message_plan(n)
    conf = settings_module.load()
    with fresh_stack("capacity", env=env) as stack:
        r = stack.redis
        time.sleep(retention_s + 2)  # the warm-up's entries trimmed: a clean start
        start_bytes = _used(r)
        start_families = _families(r)
        samples = [{"sent": 0, "used_memory": start_bytes}]
        began = time.perf_counter()
        sent = 0
        while sent < n:
            due = min(n, int((time.perf_counter() - began) * rate))
            if due <= sent:
                time.sleep(0.002)
                continue
            pipe = r.pipeline(transaction=False)
            for i in range(sent, due):
                contact, _kind, body = plan[i]
                pipe.xadd(INCOMING, webhook_fields(f"5213{contact:07d}", f"Cliente {contact}", body, f"wamid.cap.{i}"))
            pipe.execute()
            for tenth in range(sent * 10 // n + 1, due * 10 // n + 1):
                samples.append({"sent": tenth * n // 10, "used_memory": _used(r)})
            sent = due
        send_s = time.perf_counter() - began
        wait_for(lambda: ops.idle(r, conf.group) and r.zcard(conf.sched_zset) == 0, 300,
                 DRAIN_POLL_S, "every message and delay", stack)
        time.sleep(retention_s + 2.5)  # a retention period and two trims
        end_bytes = _used(r)
        end_families = _families(r)
        lengths = {stream: r.xlen(stream) for stream in (INCOMING, OUTBOX, WEBHOOKS)}
        bounded_bytes = sum(end_families.get(stream, [0, 0])[1] for stream in (OUTBOX, WEBHOOKS))
        records_bytes = end_families.get(DEDUPE_PREFIX.rstrip(":"), [0, 0])[1]  # every fe:dedupe:* key
        dedupe_bytes = _dedupe_window_bytes(r)
    samples.append({"sent": n, "used_memory": end_bytes, "settled": True})
    retained = end_bytes - start_bytes - dedupe_bytes
    per_message = retained / n
    peak = max(s["used_memory"] for s in samples)
    # An approximate trim keeps up to a stream node (100 entries) more than MAXLEN, and entries come
    # in between trims (one a second): 200 of slack.
    within_maxlen = all(lengths[stream] <= maxlen + 200 for stream in (OUTBOX, WEBHOOKS))
    passed = within_maxlen and end_bytes <= 1.10 * start_bytes + dedupe_bytes + bounded_bytes
    mib = 1024 * 1024
    summary = (f"capacity: {n:,} messages at {n / send_s:,.0f}/s, Redis used memory {start_bytes / mib:.1f} MiB at the "
               f"start, peak {peak / mib:.1f} MiB, {end_bytes / mib:.1f} MiB settled, of which the dedupe window "
               f"{dedupe_bytes / mib:.1f} MiB ({dedupe_bytes / n:.1f} B per id; its records {records_bytes / n:.1f} B) "
               f"and the outputs at their bound {bounded_bytes / mib:.1f} MiB ({lengths[OUTBOX]:,} + "
               f"{lengths[WEBHOOKS]:,} entries, MAXLEN {maxlen:,}); retained beyond the dedupe window "
               f"{per_message:.1f} B per message, beyond both {(retained - bounded_bytes) / n:.1f} B "
               f"({'PASS' if passed else 'FAIL'} <= start + 10 % + dedupe window + bounded outputs)")
    return {"summary": summary, "passed": passed, "messages": n, "rate": rate, "send_s": send_s,
            "start_bytes": start_bytes, "end_bytes": end_bytes, "peak_bytes": peak, "dedupe_bytes": dedupe_bytes,
            "dedupe_records_bytes": records_bytes, "bounded_output_bytes": bounded_bytes,
            "retained_bytes_per_message": per_message,
            "retained_beyond_outputs_per_message": (retained - bounded_bytes) / n, "samples": samples,
            "keys_at_start": start_families, "keys_at_end": end_families,
            "stream_lengths_at_end": lengths, "retention_s": retention_s, "maxlen": maxlen}
