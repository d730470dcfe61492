"""The runtime benchmarks, "throughput" and "latency": the engine's real processes
(flow_engine.devstack.Stack: 1 bridge, 1 timer loop, 1 Celery worker with prefork -c 2) against Redis
and PostgreSQL, running the shop demo flow (examples/flows/shop_demo.json, the active flow of org "bench").

Every measurement gets a fresh PostgreSQL database (created, migrated with flow_engine.adapters.migrate,
dropped in the end) and Redis database BENCH_REDIS_DB (default 2, FLUSHDB before and after).

1. Throughput (BENCH_ROUNDS rounds, default 3, each on a fresh database; the median is reported).
   The stack is started and warmed up (a few messages through the whole path, so the worker children
   have booted and hold their connections and the flow), then the bridge alone is stopped, BENCH_MESSAGES
   (default 50,000) WhatsApp webhook bodies are XADDed to nf:incoming in pipelines, and the bridge is
   started again. The clock starts when the bridge's lease appears (it takes the lease right before its
   first read; polled every 1 ms) and stops when everything is processed: consumer group lag 0, no pending
   entries, every lane fe:lane:0..N-1 empty (polled every 10 ms; the commit that empties the last lane
   writes the last outbox entry, whose stream-id time is recorded too). messages/s = N / time.
   Measuring from a started stack keeps the Celery worker's boot (1-2 s) out of the figure; the bridge's
   own first-use costs (importing the Celery app on its first enqueue, ~0.3 s) are in it, so small N
   reads low.

   The mix: N/10 contacts (5,000 by default), messages round-robin over them (each contact's 10 messages
   are spread over the whole backlog). Texts alternate between the pricing path (template + media +
   webhook) and the fallback path (one text), so each message produces output at once; every 10th
   contact says "hola" as its LAST message (greeting: a text, a 1.5 s delay, then an attribute and a
   second text). A greeting's delay would hold the contact's later messages until it ends (they would
   be answered after the timed window), hence "last". The resumes of those delays arrive ~1.5 s after
   their greeting and are not part of the timed window; the round then waits for them (timers ZSET
   empty, settled again) and checks the totals: outbox and webhook entries as expected, one flow run
   per message, nothing in the DLQ.

   Then, in the same invocation: one more round with Celery task events on (the worker started with
   `-E`, and a real Flower process consuming them when BENCH_FLOWER is not 0), and the two baselines of
   bench/baselines.py (the naive one-task-per-message design, and a direct batched consumer with no
   flow logic); the engine's median is printed as a ratio to each. BENCH_EVENTS_ROUND=0 and
   BENCH_BASELINES=0 skip those. The peak RSS of every process during the rounds without events is
   sampled (bench/memory.py) and reported by the "memory" benchmark.

   Target: >= 5,000 messages/s median (goal 10,000), >= 10x the naive baseline, correct totals.

2. Latency at a steady offered rate (BENCH_LATENCY_RATES, default "100,1000" messages/s,
   BENCH_LATENCY_MESSAGES per rate, default 1,000, BENCH_LATENCY_ROUNDS runs per rate, default 3), with
   the stack running on a fresh database: messages with unique texts on the pricing/fallback paths,
   rotating over 200 contacts per rate. Latency of a message = stream-id ms of the first nf:outbox
   entry with its text as `orig_text` minus the stream-id ms of its nf:incoming entry (both stamped by
   the Redis server's clock). Target: median over the runs of p99 <= 25 ms at 100/s, <= 250 ms at 1,000/s.

Each timed window also records the CPU seconds used (Linux /proc) by every stack process with its
children, redis-server, postgres (all backends, machine-wide), this process, the machine ("busy") and the
rest ("other"): where the time goes, and whether something else on the machine competed (the summary
warns when other processes used more than 10% of the CPU). Process logs of the last run are kept in
bench/results/runtime-logs/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from bench import baselines
from bench.interpreter import TEXTS, _git_commit
from bench.memory import RssSampler, merge
from flow_engine import ops
from flow_engine import settings as settings_module
from flow_engine.adapters.keys import BRIDGE_LEASE, DLQ, INCOMING, OUTBOX, WEBHOOKS
from flow_engine.adapters.migrate import upgrade
from flow_engine.devstack import BIN, Process, Stack

ROOT = Path(__file__).resolve().parent.parent
FLOW_FILE = ROOT / "examples" / "flows" / "shop_demo.json"
LOG_DIR = Path(__file__).resolve().parent / "results" / "runtime-logs"

REDIS_BASE = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
ORG = "bench"
CHANNEL = "ch1"
TARGET_MESSAGES_PER_S = 5_000
GOAL_MESSAGES_PER_S = 10_000
TARGET_NAIVE_RATIO = 10.0
TARGET_P99_MS = {100: 25.0, 1000: 250.0}  # offered messages/s -> p99 latency target
LATENCY_CONTACTS = 200
DRAIN_POLL_S = 0.010

# Outbox entries each kind of message produces with the shop demo (greeting: one now, one after its delay).
OUTBOX_PER_KIND = {"greeting": 2, "pricing": 2, "other": 1}
WEBHOOKS_PER_KIND = {"greeting": 0, "pricing": 1, "other": 0}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


# -- environment: a fresh database and Redis DB, the stack -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def fresh_stack(label: str, *, env: dict[str, str] | None = None, task_events: bool = False,
                flower: bool = False) -> Iterator[Stack]:
    """A started Stack on a fresh PostgreSQL database and a flushed Redis DB, the shop demo active for ORG;
    stopped, dropped and flushed in the end whatever happens. `env` overrides the stack's environment;
    `task_events` starts the worker with `-E` (Celery task events, Flower's live view) and `flower` a real
    Flower process consuming them."""
    redis_url = f"{REDIS_BASE}/{_env_int('BENCH_REDIS_DB', 2)}"
    flusher = redis.Redis.from_url(redis_url)
    flusher.flushdb()
    name = f"fe_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=NullPool)  # PostgreSQL may restart
    log_dir = LOG_DIR / label
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    stack: Stack | None = None

    def drop_database() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        database_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        upgrade(database_url)
        stack = Stack(redis_url, database_url, log_dir, env=env)
        if task_events:
            stack["worker0"].argv.append("-E")
        if flower:
            port = _free_port()
            stack.processes["flower"] = Process(
                "flower", [str(BIN / "celery"), "-A", "flow_engine", "flower", f"--port={port}", "--address=127.0.0.1"],
                stack["worker0"].env, log_dir)
        stack.load_flow(ORG, json.loads(FLOW_FILE.read_text()), name="shop_demo")
        stack.start()
        if flower:
            stack.wait_until(lambda: _listening(port), 30, "Flower to listen")
        warm_up(stack)
        yield stack
    finally:
        try:
            if stack is not None:
                stack.stop()
        finally:
            _patiently(drop_database)
            admin.dispose()
            _patiently(flusher.flushdb)
            flusher.close()


def _patiently(cleanup: Callable[[], Any], attempts: int = 15) -> None:
    """Run a clean-up step, retrying for a while: the machine's Redis or PostgreSQL may be restarting (other
    test suites restart them), and a database left behind would pile up."""
    for attempt in range(attempts):
        try:
            cleanup()
            return
        except (redis.RedisError, SQLAlchemyError):
            if attempt == attempts - 1:
                raise
            time.sleep(1)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def warm_up(stack: Stack, messages: int = 8) -> None:
    """Messages through the whole path (bridge, both worker children, commit) before anything is timed."""
    before = stack.redis.xlen(OUTBOX)
    for i in range(messages):
        stack.send(ORG, f"warmup{i}", f"consulta de calentamiento {i}", channel=CHANNEL)
    stack.wait_outbox(ORG, before + messages, timeout_s=60)
    stack.settled(timeout_s=60)


def webhook_fields(phone: str, name: str, body: str, wamid: str) -> dict[str, str]:
    """An nf:incoming entry as the webhook-receiver writes it (the shape of Stack.send, with a profile name)."""
    message = {"from": phone, "id": wamid, "timestamp": str(int(time.time())), "type": "text", "text": {"body": body}}
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": CHANNEL},
        "contacts": [{"profile": {"name": name}, "wa_id": phone}], "messages": [message]}}]}]}
    return {"source": "whatsapp", "org_id": ORG, "channel_id": CHANNEL,
            "payload": json.dumps(payload, ensure_ascii=False)}


def backlog(client: Any, group: str, lanes: int) -> tuple[int, int, int]:
    """(consumer group lag, pending entries, events in lanes); the lanes are only counted (in one round
    trip) once the stream is read and acknowledged, to keep the polling light."""
    pipe = client.pipeline(transaction=False)
    pipe.xinfo_groups(INCOMING)
    pipe.xinfo_stream(INCOMING)
    pipe.xpending(INCOMING, group)
    groups, stream, pending = pipe.execute()
    info = next(g for g in groups if g["name"] == group)
    lag = info.get("lag")
    if lag is None:  # Redis cannot tell (entries deleted): compare ids instead
        lag = 0 if info["last-delivered-id"] == stream["last-generated-id"] else 1
    if lag or pending["pending"]:
        return int(lag), int(pending["pending"]), -1
    return 0, 0, sum(ops.lane_lengths(client).values())


def _entries_read(client: Any, group: str) -> int:
    info = next(g for g in client.xinfo_groups(INCOMING) if g["name"] == group)
    return int(info.get("entries-read") or 0)


def wait_for(condition: Any, timeout_s: float, poll_s: float, what: str, stack: Stack) -> float:
    """Poll `condition` until true; returns the perf_counter time it was first seen true."""
    deadline = time.perf_counter() + timeout_s
    while True:
        now = time.perf_counter()
        if condition():
            return now
        if now > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{stack.logs()}")
        time.sleep(poll_s)


# -- CPU accounting (Linux /proc; empty elsewhere) -----------------------------------------------------------


def _processes() -> dict[int, tuple[str, int, float]]:
    """pid -> (command name, parent pid, CPU seconds used so far) of every process."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, _, rest = stat.partition(" (")[2].rpartition(")")
        fields = rest.split()
        found[int(entry.name)] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    return found


def _machine_busy_s() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def cpu_snapshot(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by each part: the stack's processes (with their children), redis-server,
    postgres (all backends: machine-wide), this process, and the whole machine ("busy")."""
    if not Path("/proc/stat").exists():
        return {}
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (_name, ppid, _cpu) in procs.items():
        children.setdefault(ppid, []).append(pid)

    def tree(pid: int) -> float:
        return procs.get(pid, ("", 0, 0.0))[2] + sum(tree(child) for child in children.get(pid, []))

    snapshot = {"busy": _machine_busy_s(), "bench": procs[os.getpid()][2]}
    for name, process in stack.processes.items():
        if process.proc is not None:
            snapshot[name] = tree(process.proc.pid)
    for comm in ("redis-server", "postgres"):
        snapshot[comm] = sum(cpu for name, _ppid, cpu in procs.values() if name == comm)
    return snapshot


def cpu_used(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    """CPU seconds per part between two snapshots; "other" is what the rest of the machine used."""
    used = {name: round(after[name] - before.get(name, 0.0), 3) for name in after}
    if used:
        used["other"] = round(used["busy"] - sum(v for k, v in used.items() if k != "busy"), 3)
        used["wall"] = round(wall_s, 3)
    return used


# -- 1. throughput ------------------------------------------------------------------------------------------


def message_plan(n: int) -> list[tuple[int, str, str]]:
    """(contact number, kind, text) of the n messages, in stream order."""
    contacts = max(1, n // 10)
    plan = []
    for i in range(n):
        contact, k = i % contacts, i // contacts
        if contact % 10 == 0 and i + contacts >= n:  # this contact's last message
            kind = "greeting"
        else:
            kind = "pricing" if (k + contact) % 2 == 0 else "other"
        texts = TEXTS[kind]
        plan.append((contact, kind, texts[(k + contact) % len(texts)]))
    return plan


def preload(client: Any, plan: list[tuple[int, str, str]], round_no: int, chunk: int = 1000) -> float:
    """XADD the plan's messages in pipelines; returns the seconds it took."""
    start = time.perf_counter()
    for offset in range(0, len(plan), chunk):
        pipe = client.pipeline(transaction=False)
        for i, (contact, _kind, body) in enumerate(plan[offset : offset + chunk], start=offset):
            phone = f"5215{round_no}{contact:07d}"
            pipe.xadd(INCOMING, webhook_fields(phone, f"Cliente {contact}", body, f"wamid.bench.{round_no}.{i}"))
        pipe.execute()
    return time.perf_counter() - start


def throughput_round(n: int, round_no: int, *, task_events: bool = False, flower: bool = False) -> dict[str, Any]:
    """One timed run of `n` pre-loaded messages on a fresh stack (see the module docstring)."""
    conf = settings_module.load()
    plan = message_plan(n)
    mix = {kind: sum(1 for _, k, _ in plan if k == kind) for kind in OUTBOX_PER_KIND}
    expected_outbox = sum(OUTBOX_PER_KIND[kind] * count for kind, count in mix.items())
    expected_webhooks = sum(WEBHOOKS_PER_KIND[kind] * count for kind, count in mix.items())
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
        preload_s = preload(r, plan, round_no)

        cpu_before, cpu_start = cpu_snapshot(stack), time.perf_counter()
        bridge.start()
        started = wait_for(lambda: r.exists(BRIDGE_LEASE), 60, 0.001, "the bridge to lead", stack)
        rss.start()
        seconds, micros = r.time()
        started_server_ms = seconds * 1000 + micros // 1000
        first_read = wait_for(lambda: _entries_read(r, conf.group) > read_before, 60, 0.001, "the first read", stack)
        timeout_s = max(120.0, n / 100)

        def drained() -> bool:
            return backlog(r, conf.group, conf.lanes) == (0, 0, 0)

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
        duplicates = int(r.hget("fe:stats", "ignored:duplicate") or 0)
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


# -- 2. latency at an offered rate --------------------------------------------------------------------------


def stream_ms(stream_id: str) -> int:
    return int(stream_id.split("-", 1)[0])


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


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
    wait_for(lambda: backlog(r, conf.group, conf.lanes) == (0, 0, 0), 60, DRAIN_POLL_S, "the engine to settle",
             stack)
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


# -- the benchmarks -----------------------------------------------------------------------------------------

# Peak RSS per process of the last throughput rounds without task events, for the "memory" benchmark:
# {"processes": {label: {...}}, "messages": n, "rounds": k}.
LAST_RSS: dict[str, Any] | None = None


def others_cpu_share(windows: list[dict[str, float]]) -> float:
    """The share of the machine's CPU used by processes outside the benchmark while measuring."""
    windows = [w for w in windows if w]
    cpus = os.cpu_count() or 1
    return sum(w["other"] for w in windows) / max(sum(w["wall"] for w in windows) * cpus, 1e-9)


def setup_info(other_share: float) -> dict[str, Any]:
    conf = settings_module.load()
    return {
        "flow": str(FLOW_FILE.relative_to(ROOT)),
        "processes": "1 bridge, 1 timer loop, 1 Celery worker prefork -c 2 (flow_engine.devstack.Stack defaults)",
        "lanes": conf.lanes,
        "read_batch": conf.read_batch,
        "lane_batch": conf.lane_batch,
        "cpus": os.cpu_count(),
        "other_processes_cpu_share": other_share,
        "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "git_commit": _git_commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def cpu_warning(other_share: float) -> list[str]:
    if other_share > 0.10:
        return [f"WARNING: other processes used {other_share:.0%} of the machine's CPU while measuring"]
    return []


def _flower_available() -> bool:
    return importlib.util.find_spec("flower") is not None


def throughput_only_for_memory() -> None:
    """One throughput round, for the "memory" benchmark run without the "throughput" one."""
    global LAST_RSS
    n = _env_int("BENCH_MESSAGES", 50_000)
    result = throughput_round(n, 1)
    LAST_RSS = {"processes": result["peak_rss"], "messages": n, "rounds": 1}


def run_throughput() -> dict[str, Any]:
    global LAST_RSS
    n = _env_int("BENCH_MESSAGES", 50_000)
    rounds = _env_int("BENCH_ROUNDS", 3)
    throughput = [throughput_round(n, round_no) for round_no in range(1, rounds + 1)]
    LAST_RSS = {"processes": merge([result["peak_rss"] for result in throughput]), "messages": n, "rounds": rounds}
    rates_per_s = [result["messages_per_s"] for result in throughput]
    median = statistics.median(rates_per_s)
    problems = [f"round {i}: {p}" for i, result in enumerate(throughput, 1) for p in result["problems"]]

    events: dict[str, Any] | None = None
    if os.environ.get("BENCH_EVENTS_ROUND", "1") != "0":
        flower = os.environ.get("BENCH_FLOWER", "1") != "0" and _flower_available()
        events = throughput_round(n, rounds + 1, task_events=True, flower=flower)
        problems += [f"events round: {p}" for p in events["problems"]]

    naive = direct = None
    if os.environ.get("BENCH_BASELINES", "1") != "0":
        naive = baselines.naive(_env_int("BENCH_NAIVE_MESSAGES", 10_000))
        direct = baselines.direct(_env_int("BENCH_DIRECT_MESSAGES", 50_000))
        if naive["outbox"] != naive["expected_outbox"]:
            problems.append(f"naive baseline: outbox {naive['outbox']} != expected {naive['expected_outbox']}")

    naive_ratio = median / naive["messages_per_s"] if naive else None
    direct_ratio = median / direct["messages_per_s"] if direct else None
    fast_enough = median >= TARGET_MESSAGES_PER_S and (naive_ratio is None or naive_ratio >= TARGET_NAIVE_RATIO)
    passed = fast_enough and not problems
    verdict = "PASS" if median >= TARGET_MESSAGES_PER_S else "FAIL"
    parts = [
        f"throughput: {median:,.0f} msg/s median (min {min(rates_per_s):,.0f}, max {max(rates_per_s):,.0f}; "
        f"{rounds} rounds x {n:,}) {verdict} >= {TARGET_MESSAGES_PER_S:,} (goal {GOAL_MESSAGES_PER_S:,})"
    ]
    if events is not None:
        parts.append(f"task events on{' + Flower' if events['flower'] else ''}: {events['messages_per_s']:,.0f} "
                     f"msg/s ({events['messages_per_s'] / median:.0%} of median)")
    if naive is not None and naive_ratio is not None:
        ok = "PASS" if naive_ratio >= TARGET_NAIVE_RATIO else "FAIL"
        parts.append(f"naive 1-task-per-msg {naive['messages_per_s']:,.0f} msg/s: ratio {naive_ratio:.1f}x {ok} "
                     f">= {TARGET_NAIVE_RATIO:.0f}x")
    if direct is not None and direct_ratio is not None:
        parts.append(f"direct batched consumer (limit) {direct['messages_per_s']:,.0f} msg/s: ratio {direct_ratio:.2f}")
    if problems:
        parts.append(f"WRONG TOTALS: {'; '.join(problems)}")
    other_share = others_cpu_share([result["cpu_s"] for result in [*throughput, *([events] if events else [])]])
    parts += cpu_warning(other_share)
    return {
        "summary": " | ".join(parts),
        "passed": passed,
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
    }


def run_latency() -> dict[str, Any]:
    count = _env_int("BENCH_LATENCY_MESSAGES", 1_000)
    runs = _env_int("BENCH_LATENCY_ROUNDS", 3)
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
