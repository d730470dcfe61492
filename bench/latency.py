"""The "latency" benchmark: how soon a message is answered at a steady offered rate.

BENCH_LATENCY_RATES (default "100,1000" messages/s), BENCH_LATENCY_MESSAGES per rate (default 1,000),
BENCH_LATENCY_ROUNDS runs per rate (default 3), with the engine's real processes running on a fresh
database (bench/stack.py): messages with unique texts on the pricing/fallback paths, rotating over
200 contacts per rate. Latency of a message = stream-id ms of the first nf:outbox entry with its text
as `orig_text` minus the stream-id ms of its nf:incoming entry (both stamped by the Redis server's
clock). Each window also records the CPU seconds used by each part (bench/measure.py).

Target: median over the runs of p99 <= 25 ms at 100/s, <= 250 ms at 1,000/s.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench.measure import cpu_snapshot, cpu_used, cpu_warning, others_cpu_share, percentile, stream_ms
from bench.stack import DRAIN_POLL_S, env_int, fresh_stack, setup_info, wait_for
from bench.workload import webhook_fields
from flow_engine import ops
from flow_engine import settings as settings_module
from flow_engine.adapters.keys import INCOMING, OUTBOX
from tests.devstack import Stack

TARGET_P99_MS = {100: 25.0, 1000: 250.0}  # offered messages/s -> p99 latency target
LATENCY_CONTACTS = 200


def latency_at(stack: Stack, rate: int, count: int, run_no: int = 1) -> dict[str, Any]:
    """Send `count` messages at `rate`/s (due ones sent together when the loop falls behind) and match
    each to its first outbox entry by its unique text."""
    r = stack.redis
    conf = settings_module.load()
    last = r.xrevrange(OUTBOX, count=1)
    since = last[0][0] if last else "0-0"
    inbound_ms: dict[str, int] = {}
    cpu_before = cpu_snapshot(stack)
    start = time.perf_counter()
    i = 0
    while i < count:
        now = time.perf_counter()
        due = start + i / rate
        if now < due:
            time.sleep(due - now)
            continue
        pipe = r.pipeline(transaction=False)
        texts = []
        while i < count and start + i / rate <= now:
            contact = i % LATENCY_CONTACTS
            body = f"cuanto cuesta el plan r{rate}-{run_no}-{i}" if i % 2 else f"consulta r{rate}-{run_no}-{i}"
            phone = f"5216{rate:05d}{contact:04d}"
            pipe.xadd(INCOMING, webhook_fields(phone, f"Cliente {contact}", body, f"wamid.lat.{rate}.{run_no}.{i}"))
            texts.append(body)
            i += 1
        for body, stream_id in zip(texts, pipe.execute(), strict=True):
            inbound_ms[body] = stream_ms(stream_id)
    send_s = time.perf_counter() - start

    first_out: dict[str, int] = {}

    def all_answered() -> bool:
        nonlocal since
        for entry_id, fields in r.xrange(OUTBOX, min=f"({since}"):
            since = entry_id
            body = fields.get("orig_text", "")
            if body in inbound_ms and body not in first_out:
                first_out[body] = stream_ms(entry_id)
        return len(first_out) == len(inbound_ms)

    wait_for(all_answered, max(60.0, count / 50), 0.05, f"answers to the {count} messages at {rate}/s", stack)
    cpu = cpu_used(cpu_before, cpu_snapshot(stack), time.perf_counter() - start)  # sending until all answered
    wait_for(lambda: ops.idle(r, conf.group), 60, DRAIN_POLL_S, "the engine to settle", stack)
    latencies = sorted(float(first_out[body] - inbound_ms[body]) for body in inbound_ms)
    return {
        "offered_per_s": rate,
        "messages": count,
        "sent_per_s": count / send_s,
        "contacts": LATENCY_CONTACTS,
        "cpu_s": cpu,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": latencies[-1],
            "min": latencies[0],
            "mean": statistics.fmean(latencies),
        },
    }


def run() -> dict[str, Any]:
    count = env_int("BENCH_LATENCY_MESSAGES", 1_000)
    runs = env_int("BENCH_LATENCY_ROUNDS", 3)
    rates = [int(part) for part in os.environ.get("BENCH_LATENCY_RATES", "100,1000").split(",") if part.strip()]
    results: dict[int, list[dict[str, Any]]] = {rate: [] for rate in rates}
    with fresh_stack("latency") as stack:
        for run_no in range(1, runs + 1):
            for rate in rates:
                results[rate].append(latency_at(stack, rate, count, run_no))
    parts, passed, per_rate = [], True, []
    for rate, measured in results.items():
        p99s = [m["latency_ms"]["p99"] for m in measured]
        median = {q: statistics.median(m["latency_ms"][q] for m in measured) for q in ("p50", "p95", "p99")}
        target = TARGET_P99_MS.get(rate)
        ok = target is None or median["p99"] <= target
        passed = passed and ok
        verdict = "" if target is None else f" {'PASS' if ok else 'FAIL'} <= {target:.0f} ms"
        parts.append(f"@{rate}/s p50 {median['p50']:.0f} ms p95 {median['p95']:.0f} ms p99 {median['p99']:.0f} ms"
                     f"{verdict} (p99 of runs: {', '.join(f'{v:.0f}' for v in p99s)}; max "
                     f"{max(m['latency_ms']['max'] for m in measured):.0f} ms)")
        per_rate.append({"offered_per_s": rate, "target_p99_ms": target, "median_ms": median, "runs": measured})
    other_share = others_cpu_share([m["cpu_s"] for measured in results.values() for m in measured])
    summary = f"latency ({runs} run(s) x {count:,} msgs per rate, medians): " + " | ".join(
        parts + cpu_warning(other_share))
    return {"summary": summary, "passed": passed, "rates": per_rate, "setup": setup_info(other_share)}
