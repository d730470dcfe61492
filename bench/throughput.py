"""The "throughput" benchmark: messages/s of the engine's real processes (bench/stack.py) draining a
pre-loaded backlog of the shop demo workload (bench/workload.py).

BENCH_ROUNDS rounds (default 3), each on a fresh stack; the median is reported. The stack is started
and warmed up (a few messages through the whole path, so the worker children have booted and hold
their connections and the flow), then the bridge alone is stopped, BENCH_MESSAGES (default 50,000)
WhatsApp webhook bodies are XADDed to nf:incoming in pipelines, and the bridge is started again. The
clock starts when the bridge's lease appears (it takes the lease right before its first read; polled
every 1 ms) and stops when everything is processed: consumer group lag 0, no pending entries, every
lane empty (`ops.backlog`, polled every 10 ms; the commit that empties the last lane writes the last
outbox entry, whose stream-id time is recorded too). messages/s = N / time. Measuring from a started
stack keeps the Celery worker's boot (1-2 s) out of the figure; the bridge's own first-use costs
(importing the Celery app on its first enqueue, ~0.3 s) are in it, so small N reads low.

The greetings' delays resume ~1.5 s after their greeting, outside the timed window; the round then
waits for them (timers ZSET empty, settled again) and checks the totals: outbox and webhook entries as
expected, one flow run per message, nothing in the DLQ.

Then, in the same invocation: one more round with Celery task events on (the worker started with
`-E`, and a real Flower process consuming them when BENCH_FLOWER is not 0), and the two baselines of
bench/baselines.py (the naive one-task-per-message design, and a direct batched consumer with no flow
logic); the engine's median is printed as a ratio to each. BENCH_EVENTS_ROUND=0 and BENCH_BASELINES=0
skip those. The peak RSS of every process during the rounds without events is sampled
(bench/memory.py) and returned as `peak_rss`, for the "memory" benchmark.

Each timed window also records the CPU seconds used by every stack process with its children,
redis-server, postgres, this process and the rest of the machine (bench/measure.py).

Target: >= 5,000 messages/s median (goal 10,000), >= 10x the naive baseline, correct totals.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench import baselines
from bench.measure import cpu_snapshot, cpu_used, cpu_warning, others_cpu_share, stream_ms
from bench.memory import RssSampler, merge
from bench.stack import DRAIN_POLL_S, env_int, flower_available, fresh_stack, setup_info, wait_for
from bench.workload import expected, message_plan, preload
from flow_engine import ops
from flow_engine import settings as settings_module
from flow_engine.adapters.keys import BRIDGE_LEASE, DLQ, INCOMING, OUTBOX, STATS, WEBHOOKS, ignored_field

TARGET_MESSAGES_PER_S = 5_000
GOAL_MESSAGES_PER_S = 10_000
TARGET_NAIVE_RATIO = 10.0


def _entries_read(client: Any, group: str) -> int:
    info = next(g for g in client.xinfo_groups(INCOMING) if g["name"] == group)
    return int(info.get("entries-read") or 0)


def throughput_round(n: int, round_no: int, *, task_events: bool = False, flower: bool = False) -> dict[str, Any]:
    """One timed run of `n` pre-loaded messages on a fresh stack (see the module docstring)."""
    conf = settings_module.load()
    plan = message_plan(n)
    mix, expected_outbox, expected_webhooks = expected(plan)
    label = f"throughput{round_no}" + ("-events" if task_events else "")
    with fresh_stack(label, task_events=task_events, flower=flower) as stack:
        rss = RssSampler(stack)  # from the bridge's restart until the round is settled
        r = stack.redis
        bridge = stack["bridge0"]
        bridge.stop()  # resigns its lease: the next bridge takes it at once
        wait_for(lambda: not r.exists(BRIDGE_LEASE), 20, 0.01, "the bridge to resign", stack)
        outbox_before, webhooks_before = r.xlen(OUTBOX), r.xlen(WEBHOOKS)
        read_before = _entries_read(r, conf.group)
        runs_before = stack.rows("SELECT count(*) FROM flow_runs")[0][0]
        preload_s = preload(r, plan, f"5215{round_no}", f"wamid.bench.{round_no}")

        cpu_before, cpu_start = cpu_snapshot(stack), time.perf_counter()
        bridge.start()
        started = wait_for(lambda: r.exists(BRIDGE_LEASE), 60, 0.001, "the bridge to lead", stack)
        rss.start()
        seconds, micros = r.time()
        started_server_ms = seconds * 1000 + micros // 1000
        first_read = wait_for(lambda: _entries_read(r, conf.group) > read_before, 60, 0.001, "the first read", stack)
        timeout_s = max(120.0, n / 100)

        def drained() -> bool:
            return ops.idle(r, conf.group)

        done = wait_for(drained, timeout_s, DRAIN_POLL_S, "the backlog to drain", stack)
        elapsed_s = done - started
        cpu = cpu_used(cpu_before, cpu_snapshot(stack), time.perf_counter() - cpu_start)
        first_outbox = r.xrange(OUTBOX, count=outbox_before + 1)[-1][0]
        last_outbox = r.xrevrange(OUTBOX, count=1)[0][0]  # written by the commit that emptied the last lane
        outbox_after_drain = r.xlen(OUTBOX) - outbox_before

        # The greetings' delays come back ~1.5 s later: wait for them, then check the totals.
        def settled() -> bool:
            return r.zcard(conf.sched_zset) == 0 and drained()

        all_done = wait_for(settled, 60, DRAIN_POLL_S, "the greetings' delays to resume", stack)
        rss.stop()
        outbox = r.xlen(OUTBOX) - outbox_before
        webhooks = r.xlen(WEBHOOKS) - webhooks_before
        runs = stack.rows("SELECT count(*) FROM flow_runs")[0][0] - runs_before
        dlq = r.xlen(DLQ)
        duplicates = int(r.hget(STATS, ignored_field("duplicate")) or 0)
    problems = []
    if outbox != expected_outbox:
        problems.append(f"outbox {outbox} != expected {expected_outbox}")
    if webhooks != expected_webhooks:
        problems.append(f"webhooks {webhooks} != expected {expected_webhooks}")
    if runs != n:
        problems.append(f"flow runs {runs} != {n}")
    if dlq or duplicates:
        problems.append(f"dlq {dlq}, duplicates {duplicates}")
    return {
        "messages": n,
        "contacts": max(1, n // 10),
        "task_events": task_events,
        "flower": flower,
        "mix": mix,
        "preload_s": preload_s,
        "elapsed_s": elapsed_s,
        "messages_per_s": n / elapsed_s,
        "first_read_after_s": first_read - started,
        "first_outbox_after_s": (stream_ms(first_outbox) - started_server_ms) / 1000,
        "last_outbox_after_s": (stream_ms(last_outbox) - started_server_ms) / 1000,
        "messages_per_s_from_first_read": n / (done - first_read),
        "outbox_at_drain": outbox_after_drain,
        "settled_with_delays_s": all_done - started,
        "outbox": outbox,
        "expected_outbox": expected_outbox,
        "webhooks": webhooks,
        "expected_webhooks": expected_webhooks,
        "flow_runs": runs,
        "dlq": dlq,
        "cpu_s": cpu,
        "peak_rss": rss.report(),
        "problems": problems,
    }


def summary(median: float, rates_per_s: list[float], rounds: int, n: int, events: dict[str, Any] | None,
            naive: dict[str, Any] | None, direct: dict[str, Any] | None, problems: list[str]) -> list[str]:
    verdict = "PASS" if median >= TARGET_MESSAGES_PER_S else "FAIL"
    parts = [
        f"throughput: {median:,.0f} msg/s median (min {min(rates_per_s):,.0f}, max {max(rates_per_s):,.0f}; "
        f"{rounds} rounds x {n:,}) {verdict} >= {TARGET_MESSAGES_PER_S:,} (goal {GOAL_MESSAGES_PER_S:,})"
    ]
    if events is not None:
        parts.append(f"task events on{' + Flower' if events['flower'] else ''}: {events['messages_per_s']:,.0f} "
                     f"msg/s ({events['messages_per_s'] / median:.0%} of median)")
    if naive is not None:
        naive_ratio = median / naive["messages_per_s"]
        ok = "PASS" if naive_ratio >= TARGET_NAIVE_RATIO else "FAIL"
        parts.append(f"naive 1-task-per-msg {naive['messages_per_s']:,.0f} msg/s: ratio {naive_ratio:.1f}x {ok} "
                     f">= {TARGET_NAIVE_RATIO:.0f}x")
    if direct is not None:
        parts.append(f"direct batched consumer (limit) {direct['messages_per_s']:,.0f} msg/s: ratio "
                     f"{median / direct['messages_per_s']:.2f}")
    if problems:
        parts.append(f"WRONG TOTALS: {'; '.join(problems)}")
    return parts


def run() -> dict[str, Any]:
    n = env_int("BENCH_MESSAGES", 50_000)
    rounds = env_int("BENCH_ROUNDS", 3)
    throughput = [throughput_round(n, round_no) for round_no in range(1, rounds + 1)]
    rates_per_s = [result["messages_per_s"] for result in throughput]
    median = statistics.median(rates_per_s)
    problems = [f"round {i}: {p}" for i, result in enumerate(throughput, 1) for p in result["problems"]]

    events: dict[str, Any] | None = None
    if os.environ.get("BENCH_EVENTS_ROUND", "1") != "0":
        flower = os.environ.get("BENCH_FLOWER", "1") != "0" and flower_available()
        events = throughput_round(n, rounds + 1, task_events=True, flower=flower)
        problems += [f"events round: {p}" for p in events["problems"]]

    naive = direct = None
    if os.environ.get("BENCH_BASELINES", "1") != "0":
        naive = baselines.naive(env_int("BENCH_NAIVE_MESSAGES", 10_000))
        direct = baselines.direct(env_int("BENCH_DIRECT_MESSAGES", 50_000))
        if naive["outbox"] != naive["expected_outbox"]:
            problems.append(f"naive baseline: outbox {naive['outbox']} != expected {naive['expected_outbox']}")

    naive_ratio = median / naive["messages_per_s"] if naive else None
    direct_ratio = median / direct["messages_per_s"] if direct else None
    fast_enough = median >= TARGET_MESSAGES_PER_S and (naive_ratio is None or naive_ratio >= TARGET_NAIVE_RATIO)
    parts = summary(median, rates_per_s, rounds, n, events, naive, direct, problems)
    other_share = others_cpu_share([result["cpu_s"] for result in [*throughput, *([events] if events else [])]])
    parts += cpu_warning(other_share)
    return {
        "summary": " | ".join(parts),
        "passed": fast_enough and not problems,
        "target_messages_per_s": TARGET_MESSAGES_PER_S,
        "goal_messages_per_s": GOAL_MESSAGES_PER_S,
        "target_naive_ratio": TARGET_NAIVE_RATIO,
        "median_messages_per_s": median,
        "rounds_messages_per_s": rates_per_s,
        "rounds": throughput,
        "task_events_round": events,
        "baselines": {"naive": naive, "direct": direct},
        "ratio_to_naive": naive_ratio,
        "ratio_to_direct": direct_ratio,
        "problems": problems,
        "setup": setup_info(other_share),
        # Peak RSS per process over the rounds without task events, for the "memory" benchmark.
        "peak_rss": merge([result["peak_rss"] for result in throughput]),
        "messages": n,
    }
