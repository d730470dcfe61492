"""The two baselines the throughput benchmark compares the engine with, measured in the same invocation
on the same pre-loaded WhatsApp messages (the throughput plan: same texts, ten messages per contact):

- naive: the "original" design. A bridge (this process) reads nf:incoming with XREADGROUP (200 per read)
  and calls `process_message.delay(id, fields)` for every entry, then XACKs the batch; a Celery worker
  (`celery -A bench.naive worker -c 2`, prefork, Redis broker) runs one task per message (bench/naive.py).
  Timed from the bridge's first read to the last expected outbox entry; BENCH_NAIVE_MESSAGES (default
  10,000). DESIGN §1 measured 380-630 messages/s for this shape.
- direct: the limit of a Python consumer with no flow logic: XREADGROUP 200, then one pipeline with an
  XADD to nf:outbox per entry and one XACK of the batch. Timed from the first read until every entry is
  acknowledged; BENCH_DIRECT_MESSAGES (default 50,000). DESIGN §1 measured ~46,000 messages/s.

Both use Redis database BENCH_BASELINE_REDIS_DB (default 3), flushed before and after; the worker's log
goes to bench/results/runtime-logs/naive/.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench.workload import message_plan, preload
from flow_engine.adapters.keys import INCOMING, OUTBOX
from tests.devstack import BIN, Process, TimedOut, poll_until

LOG_DIR = Path(__file__).resolve().parent / "results" / "runtime-logs"
NAIVE_OUTBOX_PER_KIND = {"greeting": 1, "pricing": 2, "other": 1}  # no wait state: a delay never resumes


def _url() -> str:
    base = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
    return f"{base}/{int(os.environ.get('BENCH_BASELINE_REDIS_DB', '3'))}"


def _preload(client: Any, n: int, label: str) -> None:
    preload(client, message_plan(n), "52170", f"wamid.{label}")


def _poll(condition: Any, timeout_s: float, what: str, poll_s: float = 0.01) -> float:
    return poll_until(condition, timeout_s, what, poll_s=poll_s).at


def naive(n: int) -> dict[str, Any]:
    """Messages/s of one Celery task per message (see the module docstring)."""
    from bench import naive as naive_app

    url = _url()
    client: Any = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    log_dir = LOG_DIR / "naive"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    env = {**os.environ, "BENCH_NAIVE_REDIS_URL": url}
    worker = Process("worker", [str(BIN / "celery"), "-A", "bench.naive", "worker", "-c", "2", "-Q", naive_app.QUEUE,
                                "-n", "naive@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
                                "--loglevel=INFO"], env, log_dir)
    naive_app.app.conf.broker_url = url  # this process is the bridge: it publishes the tasks
    task = naive_app.process_message
    group = "naive"
    try:
        worker.start()
        _poll(lambda: " ready." in worker.log(), 60, "the naive worker to be ready", 0.05)
        client.xgroup_create(INCOMING, group, id="0", mkstream=True)

        def bridge(until: int) -> int:
            """Read and enqueue one task per entry until `until` entries were handed on (or the stream is read)."""
            handed = 0
            while handed < until:
                reply = client.xreadgroup(group, "bridge", {INCOMING: ">"}, count=200, block=100)
                if not reply:
                    break
                entries = reply[0][1]
                for entry_id, fields in entries:
                    task.delay(entry_id, fields)
                client.xack(INCOMING, group, *[entry_id for entry_id, _ in entries])
                handed += len(entries)
            return handed

        # Warm-up: both children import, parse the flow and connect before anything is timed.
        _preload(client, 20, "naive-warmup")
        bridge(20)
        _poll(lambda: client.xlen(OUTBOX) >= 20, 60, "the naive warm-up")
        time.sleep(0.2)
        client.delete(OUTBOX)

        plan = message_plan(n)
        expected = sum(NAIVE_OUTBOX_PER_KIND[kind] for _contact, kind, _text in plan)
        _preload(client, n, "naive")
        start = time.perf_counter()
        handed = bridge(n)
        bridged = time.perf_counter()
        done = _poll(lambda: client.xlen(OUTBOX) >= expected, max(120.0, n / 50), "the naive outbox")
        outbox = client.xlen(OUTBOX)
    except TimedOut as exc:
        raise TimedOut(f"{exc}\n--- naive worker\n{worker.log()[-3000:]}") from None
    finally:
        worker.stop()
        client.flushdb()
        client.close()
    elapsed = done - start
    return {"messages": n, "handed_on": handed, "elapsed_s": elapsed, "messages_per_s": n / elapsed,
            "bridge_s": bridged - start, "outbox": outbox, "expected_outbox": expected,
            "setup": "bridge in the bench process: XREADGROUP 200 + task.delay per entry + XACK; "
                     "worker: celery -A bench.naive worker -c 2 (prefork), Redis broker"}


def direct(n: int) -> dict[str, Any]:
    """Messages/s of a batched consumer with no flow logic (see the module docstring)."""
    client: Any = redis.Redis.from_url(_url())  # bytes, like the engine's bridge
    client.flushdb()
    group = b"direct"
    try:
        _preload(client, n, "direct")
        client.xgroup_create(INCOMING, group, id="0")
        done = 0
        start = time.perf_counter()
        while done < n:
            reply = client.xreadgroup(group, b"consumer", {INCOMING: ">"}, count=200)
            if not reply:
                break
            entries = reply[0][1]
            pipe = client.pipeline(transaction=False)
            for entry_id, fields in entries:
                pipe.xadd(OUTBOX, {b"org_id": fields[b"org_id"], b"channel_id": fields[b"channel_id"],
                                   b"source_id": entry_id, b"type": b"text", b"text": b"ok"})
            pipe.xack(INCOMING, group, *[entry_id for entry_id, _ in entries])
            pipe.execute()
            done += len(entries)
        elapsed = time.perf_counter() - start
        pending = client.xpending(INCOMING, group)["pending"]
        outbox = client.xlen(OUTBOX)
    finally:
        client.flushdb()
        client.close()
    return {"messages": n, "elapsed_s": elapsed, "messages_per_s": done / elapsed, "outbox": outbox,
            "pending_after": pending, "python": sys.version.split()[0],
            "setup": "XREADGROUP 200, one pipeline: XADD nf:outbox per entry + XACK of the batch"}
