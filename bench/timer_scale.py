"""The "timer_scale" benchmark: a million paused runs waiting for a reply with a timeout, and a hundred
thousand of them timing out at the same moment, through the real stack (bench/runtime.py's fresh_stack).

Setup. Org "scale" gets a verification-code flow (ask; wait_for_reply a 6-digit code with a 1 h timeout
going to path "expired"; "expired" sends one text). BENCH_SCALE_WAITS pending waits (default 1,000,000)
are written straight into Redis as the engine stores them, produced by the engine's own code: for
contact i, `interpret` of "hola" (event key "<base ms>-<i>/0") and `outcome_ops` give the commit ops;
the wait key SET ("w") and the timer ZADD ("z") are applied as commit.lua applies them, plus the `waits`
counter it keeps. So the wait value and the timer member are whatever the engine currently writes.

1. Memory. INFO used_memory before and after writing them, divided by their number: bytes per pending
   wait with its timer. Redis is shared (other databases may change meanwhile), so a second estimate
   from the keys themselves is made: MEMORY USAGE of sampled wait keys, plus MEMORY USAGE of the whole
   timers ZSET / count, plus the keyspace hash table's slots / count. The larger of the two is judged,
   unless they differ by more than 25% (INFO disturbed by other clients: the keys' figure is judged and
   the summary says so). Target: <= 500 bytes.

2. Simultaneous timeouts (BENCH_SCALE_ROUNDS rounds, default 3, each with another BENCH_SCALE_DUE
   waits of the million, default 100,000). Their flow_runs rows are inserted (status running, as the
   paused runs would have them), then their wait value and timer are rewritten with one due moment T
   (BENCH_SCALE_LEAD_MS after now, default 30,000, enough to write them all first) and the timer loop is
   woken (fe:timers:wake, as a worker adding an earlier timer does). The clock starts at T. Fired: the
   stream-id ms of the last resume entry the timer loop publishes on nf:incoming - T. Processed: the
   stream-id ms of the last of the expected nf:outbox entries (the "expired" text) - T. Checked: exactly
   that many outbox entries, their runs completed in PostgreSQL, their wait keys gone, nothing in the
   DLQ. Target: processed within 30 s (median of the rounds).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from typing import Any

from sqlalchemy import insert

from bench.measure import cpu_snapshot, cpu_used, cpu_warning, others_cpu_share, stream_ms
from bench.stack import fresh_stack, setup_info, wait_for
from bench.workload import CHANNEL
from flow_engine import settings as settings_module
from flow_engine.adapters.db import FlowRunRow, utcnow
from flow_engine.adapters.effects import outcome_ops
from flow_engine.adapters.keys import DLQ, INCOMING, OUTBOX, STATS, TIMER_WAKE, Keys
from flow_engine.core.graph import parse_flow
from flow_engine.core.inbound import Message
from flow_engine.core.interpreter import interpret
from flow_engine.core.outcome import Contact, Outcome
from tests.devstack import Stack

ORG = "scale"
TARGET_BYTES_PER_WAIT = 500.0
TARGET_PROCESSED_S = 30.0
EXPIRED = "No recibí tu código a tiempo. Escribe de nuevo para reintentar."
FLOW = {
    "name": "Verification code (scale)",
    "nodes": [{"id": "start", "type": "intent", "map": {"default": "ask"}}],
    "paths": {
        "ask": [
            {"type": "action", "action": "send_text", "text": "Envíame el código de 6 dígitos que recibiste."},
            {"type": "wait_for_reply", "pattern": "\\b\\d{6}\\b", "timeout_seconds": 3600, "timeout_path": "expired"},
            {"type": "set_attribute", "key": "verified", "value": True},
            {"type": "action", "action": "send_text", "text": "¡Código recibido: {{message.text}}! Gracias."},
        ],
        "expired": [{"type": "action", "action": "send_text", "text": EXPIRED}],
    },
}
CHUNK = 5_000


class Waits:
    """Pending wait i, produced by the engine's own code: `interpret` of "hola" from contact i (event key
    "<base ms>-<i>/0") and `outcome_ops`, the ops commit.lua applies. Only the "w" (SET the wait key) and
    "z" (ZADD the timer) ops are applied here, as commit.lua applies them; whatever the wait JSON and the
    timer member look like, they are the engine's."""

    def __init__(self, flow_id: str, version: int, base_ms: int) -> None:
        self.flow = parse_flow(FLOW, flow_id=flow_id, version=version)
        if not self.flow.valid:
            raise RuntimeError(f"the scale flow is invalid: {self.flow.problems}")
        self.keys = Keys.of(settings_module.load())
        self.base_ms = base_ms
        outcome = self.outcome(0, base_ms)
        if outcome.wait_after is None or outcome.wait_after.due_ms is None or len(outcome.timers_add) != 1:
            raise RuntimeError(f"the scale flow did not pause with a timeout: {outcome}")
        self.timeout_ms = outcome.wait_after.due_ms - base_ms

    @staticmethod
    def contact(i: int) -> str:
        return f"5219{i:08d}"

    def message(self, i: int) -> Message:
        return Message(key=f"{self.base_ms}-{i}/0", org_id=ORG, channel_id=CHANNEL, contact=self.contact(i),
                       text="hola")

    def outcome(self, i: int, now_ms: int) -> Outcome:
        return interpret(self.flow, self.message(i), None, Contact(self.contact(i)), now_ms)

    def state(self, i: int, due_ms: int) -> tuple[tuple[str, str], tuple[str, str], Outcome]:
        """((wait key, value), (timer member, due ms), outcome) of wait i when it is due at `due_ms`."""
        outcome = self.outcome(i, due_ms - self.timeout_ms)
        wait = timer = None
        for op in outcome_ops(self.keys, self.message(i), outcome):
            if op[0] == "w":
                wait = (op[1], op[2])
            elif op[0] == "z":
                timer = (op[2], op[1])
        if wait is None or timer is None:
            raise RuntimeError("outcome_ops has no 'w' and 'z' op for a paused run: update bench/timer_scale.py")
        return wait, timer, outcome

    def run_row(self, i: int, due_ms: int) -> dict[str, Any]:
        """The flow_runs row of paused run i, as the worker would have upserted it."""
        run = self.outcome(i, due_ms - self.timeout_ms).run
        assert run is not None
        now = utcnow()
        return {"id": run.id, "org_id": ORG, "flow_id": run.flow_id, "flow_version": run.flow_version,
                "contact": self.contact(i), "channel_id": CHANNEL, "status": run.status, "last_step": run.last_step,
                "context": dict(run.context), "created_at": now, "updated_at": now}

    def write(self, stack: Stack, indices: range, due_ms: int, *, counted: bool) -> None:
        """SET the wait keys and ZADD the timers of `indices` (pipelined); `counted`: new waits, bump `waits`
        (the counter commit.lua keeps for the pending-waits gauge)."""
        for start in range(indices.start, indices.stop, CHUNK):
            pipe = stack.redis.pipeline(transaction=False)
            for i in range(start, min(start + CHUNK, indices.stop)):
                (key, value), (member, score), _outcome = self.state(i, due_ms)
                pipe.set(key, value)
                pipe.zadd(self.keys.timers, {member: score})
            pipe.execute()
        if counted:
            stack.redis.hincrby(STATS, "waits", len(indices))


def _used_memory(stack: Stack) -> int:
    return int(stack.redis.info("memory")["used_memory"])


def _server_ms(stack: Stack) -> int:
    seconds, micros = stack.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def measure_memory(stack: Stack, waits: Waits, count: int, due_ms: int) -> dict[str, Any]:
    time.sleep(1)  # let the stack's own keys settle
    before = _used_memory(stack)
    started = time.perf_counter()
    waits.write(stack, range(count), due_ms, counted=True)
    write_s = time.perf_counter() - started
    time.sleep(1)  # incremental rehashing of the grown hash tables
    after = _used_memory(stack)
    rng = random.Random(7)
    sample = [waits.state(rng.randrange(count), due_ms) for _ in range(min(500, count))]
    key_bytes = statistics.fmean(int(stack.redis.memory_usage(key) or 0) for (key, _v), _t, _o in sample)
    zset_bytes = int(stack.redis.memory_usage(waits.keys.timers, samples=0) or 0)
    (key, value), (member, _score), _outcome = sample[0]
    info_per_wait = (after - before) / count
    # The keyspace's hash table has a slot (8 bytes) per power-of-two bucket; MEMORY USAGE leaves it out.
    slots = 1 << max(int(stack.redis.dbsize()) - 1, 1).bit_length()
    keys_per_wait = key_bytes + zset_bytes / count + 8 * slots / count
    # INFO is server-wide: other clients of a shared server disturb it. When it is far from the keys' own
    # figure, judge the keys' figure; else the larger of the two.
    disturbed = abs(info_per_wait - keys_per_wait) > 0.25 * keys_per_wait
    return {
        "pending_waits": count,
        "write_s": write_s,
        "used_memory_before": before,
        "used_memory_after": after,
        "bytes_per_wait_info": info_per_wait,
        "bytes_per_wait_keys": keys_per_wait,
        "bytes_per_wait": keys_per_wait if disturbed else max(info_per_wait, keys_per_wait),
        "info_disturbed": disturbed,
        "wait_key_memory_usage_avg": key_bytes,
        "timer_zset_memory_usage_per_member": zset_bytes / count,
        "raw_sizes": {"wait_key_name": len(key.encode()), "wait_value": len(value.encode()),
                      "timer_member": len(member.encode())},
        "example": {"key": key, "wait_value": value, "timer_member": member},
    }


def timeout_round(stack: Stack, waits: Waits, indices: range, pending_due_ms: int, lead_ms: int) -> dict[str, Any]:
    """Make the waits of `indices` (pending until `pending_due_ms`) due at one moment T and time their
    firing and processing."""
    due = len(indices)
    for start in range(indices.start, indices.stop, 10_000):  # the paused runs' rows, as the engine wrote them
        rows = [waits.run_row(i, pending_due_ms) for i in range(start, min(start + 10_000, indices.stop))]
        with stack.engine.begin() as conn:
            conn.execute(insert(FlowRunRow), rows)
    outbox_before = stack.redis.xlen(OUTBOX)
    incoming_before = stack.redis.xlen(INCOMING)
    moment = _server_ms(stack) + lead_ms
    waits.write(stack, indices, moment, counted=False)  # same members: ZADD updates their score
    left_ms = moment - _server_ms(stack)
    if left_ms < 200:
        raise RuntimeError(f"writing {due:,} due waits took longer than BENCH_SCALE_LEAD_MS={lead_ms}; raise it")
    stack.redis.publish(TIMER_WAKE, str(moment))  # as commit.lua does for a timer earlier than the first one
    time.sleep(max(moment - _server_ms(stack) - 50, 0) / 1000)
    cpu_before, started = cpu_snapshot(stack), time.perf_counter()
    r = stack.redis

    def processed() -> bool:
        return bool(int(r.xlen(OUTBOX)) - outbox_before >= due)

    wait_for(processed, max(120.0, due / 500), 0.02, f"{due:,} timeouts to be processed", stack)
    cpu = cpu_used(cpu_before, cpu_snapshot(stack), time.perf_counter() - started)
    last_out = r.xrevrange(OUTBOX, count=1)[0][0]
    last_resume = r.xrevrange(INCOMING, count=1)[0][0]
    stack.settled(timeout_s=120)
    problems = []
    resumes = int(r.xlen(INCOMING)) - incoming_before
    outbox = int(r.xlen(OUTBOX)) - outbox_before
    if resumes != due or outbox != due:
        problems.append(f"{resumes} resumes and {outbox} outbox entries, expected {due} of each")
    if r.zcount(waits.keys.timers, "-inf", moment):
        problems.append("due timers left in the ZSET")
    sample = list(indices[:: max(1, due // 1000)])
    if any(r.exists(waits.state(i, moment)[0][0]) for i in sample):
        problems.append("wait keys of timed-out runs still exist")
    texts = {fields.get("text") for _id, fields in r.xrevrange(OUTBOX, count=min(due, 1000))}
    if texts != {EXPIRED}:
        problems.append(f"unexpected outbox texts: {sorted(str(t) for t in texts)[:3]}")
    run_ids = [waits.run_row(i, moment)["id"] for i in sample]
    completed = stack.rows("SELECT count(*) FROM flow_runs WHERE status = 'completed' AND last_step = 'expired:0' "
                           "AND id = ANY(:ids)", ids=run_ids)[0][0]
    if completed != len(sample):
        problems.append(f"{len(sample) - completed} of {len(sample)} sampled runs not completed in PostgreSQL")
    if r.xlen(DLQ):
        problems.append(f"{r.xlen(DLQ)} entries in the DLQ")
    return {"due": due, "lead_ms": lead_ms, "fired_s": (stream_ms(last_resume) - moment) / 1000,
            "processed_s": (stream_ms(last_out) - moment) / 1000, "cpu_s": cpu, "problems": problems}


def run() -> dict[str, Any]:
    count = int(os.environ.get("BENCH_SCALE_WAITS", "1000000"))
    due = int(os.environ.get("BENCH_SCALE_DUE", "100000"))
    rounds = int(os.environ.get("BENCH_SCALE_ROUNDS", "3"))
    lead_ms = int(os.environ.get("BENCH_SCALE_LEAD_MS", "30000"))
    if due * rounds > count:
        raise RuntimeError(f"BENCH_SCALE_DUE x BENCH_SCALE_ROUNDS ({due * rounds:,}) > BENCH_SCALE_WAITS ({count:,})")
    with fresh_stack("timer_scale") as stack:
        flow_id = stack.load_flow(ORG, FLOW, name="verification")
        version = int(stack.rows("SELECT version FROM flows WHERE id = :id", id=flow_id)[0][0])
        now_ms = _server_ms(stack)
        waits = Waits(flow_id, version, now_ms)
        pending_due_ms = now_ms + waits.timeout_ms
        memory = measure_memory(stack, waits, count, pending_due_ms)
        results = [timeout_round(stack, waits, range(k * due, (k + 1) * due), pending_due_ms, lead_ms)
                   for k in range(rounds)]

    per_wait = memory["bytes_per_wait"]
    processed_s = statistics.median(r["processed_s"] for r in results)
    fired_s = statistics.median(r["fired_s"] for r in results)
    problems = [f"round {k}: {p}" for k, r in enumerate(results, 1) for p in r["problems"]]
    memory_ok, speed_ok = per_wait <= TARGET_BYTES_PER_WAIT, processed_s <= TARGET_PROCESSED_S
    other_share = others_cpu_share([r["cpu_s"] for r in results])
    sizes = memory["raw_sizes"]
    parts = [
        f"timer_scale: {per_wait:,.0f} bytes per pending wait with its timer ({count:,} waits; INFO "
        f"{memory['bytes_per_wait_info']:,.0f}, keys {memory['bytes_per_wait_keys']:,.0f}: wait key "
        f"{memory['wait_key_memory_usage_avg']:,.0f} + ZSET member {memory['timer_zset_memory_usage_per_member']:,.0f};"
        f" value {sizes['wait_value']} B, member {sizes['timer_member']} B) "
        f"{'PASS' if memory_ok else 'FAIL'} <= {TARGET_BYTES_PER_WAIT:.0f}"
        + (" (INFO disturbed by other Redis clients: keys judged)" if memory["info_disturbed"] else ""),
        f"{due:,} simultaneous timeouts fired in {fired_s:.1f} s, processed in {processed_s:.1f} s "
        f"{'PASS' if speed_ok else 'FAIL'} <= {TARGET_PROCESSED_S:.0f} s (median of {rounds}: "
        + ", ".join(f"{r['processed_s']:.1f}" for r in results) + ")",
        *([f"WRONG: {'; '.join(problems)}"] if problems else []),
        *cpu_warning(other_share),
    ]
    return {"summary": " | ".join(parts), "passed": memory_ok and speed_ok and not problems,
            "target_bytes_per_wait": TARGET_BYTES_PER_WAIT, "target_processed_s": TARGET_PROCESSED_S,
            "memory": memory, "fired_s_median": fired_s, "processed_s_median": processed_s, "rounds": results,
            "problems": problems, "setup": setup_info(other_share)}
