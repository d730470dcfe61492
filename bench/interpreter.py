"""The "interpreter" benchmark: events/s of the pure core on one core, parsing included.

Each iteration does what the runtime's worker does in pure code for one nf:incoming entry: `parse_entry`
on the entry's fields (a WhatsApp webhook body as a JSON string), then `interpret` for each event with
a Contact snapshot and no wait state. The workload cycles through the three paths of the shop demo:

  greeting "hola..."               -> send_text + delay (pauses); its delay timer is then resumed
  pricing "cuanto cuesta el plan"  -> send_template + send_media + webhook
  other text                       -> fallback path, send_text

The greeting's timer comes back as its own nf:incoming entry (the `engine_resume` fields the timer loop
publishes, built from `timers_add[0]`); it is parsed and interpreted against the greeting's `wait_after`,
so resumes (25% of the events) are part of the mix. Building the entries and producing the resume fields
are done once, untimed, in a preparation pass that also checks every entry takes its intended path.

Baseline, in the same process: `json.loads` of each entry's JSON field alone (the floor of parsing).
Rounds alternate baseline / interpreter; the GC stays enabled (as in production) and is collected
before each round. Environment: BENCH_EVENTS (events per round, default 50,000), BENCH_ROUNDS
(default 5), BENCH_PROFILE=1 (also profile one round: bench/results/interpreter.prof + top entries
on stderr).
"""

from __future__ import annotations

import cProfile
import gc
import hashlib
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from flow_engine.core.graph import Flow, parse_flow
from flow_engine.core.inbound import Message, Resume, parse_entry
from flow_engine.core.interpreter import interpret
from flow_engine.core.outcome import AttributeWrite, Contact, OutboxMessage, Outcome
from flow_engine.core.whatsapp import text_message_body

ROOT = Path(__file__).resolve().parent.parent
FLOW_FILE = ROOT / "examples" / "flows" / "shop_demo.json"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_EVENTS_PER_S = 30_000

# Texts per path, varied in length, accents, punctuation and emoji so normalization does real work.
TEXTS: dict[str, tuple[str, ...]] = {
    "greeting": ("hola", "Hola!", "buenas tardes", "Hola, buenos días 👋", "hey, qué tal?"),
    "pricing": ("cuanto cuesta el plan", "¿Cuánto cuesta el plan premium?", "precios por favor",
                "Hi, what are your prices?", "me pasas la tarifa mensual"),
    # "problema" is the support intent, which the shop demo does not map: it falls back like the rest.
    "other": ("quiero saber el horario de la tienda", "gracias", "¿Tienen envíos a Monterrey?", "ok 👍",
              "tengo un problema con mi pedido #4821"),
}
KINDS = ("greeting", "pricing", "other")  # round-robin: 3 entries -> 4 events (greeting + its resume)

BASE_MS = 1_700_000_000_000  # a fixed clock, so runs are reproducible
PHONE_NUMBER_ID = "106540352242922"


class Job(NamedTuple):
    """One nf:incoming entry (and, for greetings, the timer entry that resumes it)."""

    stream_id: str
    fields: dict[str, str]
    contact: Contact
    now_ms: int
    resume_id: str | None = None
    resume_fields: dict[str, str] | None = None
    resume_ms: int = 0


def _webhook_body(i: int, phone: str, name: str, text: str, ts_s: int) -> str:
    """A WhatsApp Cloud API webhook body (one inbound text message), as Meta sends it."""
    wamid = "wamid." + hashlib.sha256(f"msg-{i}".encode()).hexdigest()[:48].upper()
    body = text_message_body(phone, text, wamid=wamid, timestamp_s=ts_s, phone_number_id=PHONE_NUMBER_ID, name=name,
                             business_id="102290129340398", display_phone="15550783881")
    return json.dumps(body, ensure_ascii=False)


def _contact(i: int) -> tuple[str, str, Contact]:
    """A distinct contact per entry: (phone, WhatsApp profile name, the stored snapshot).

    Half are known contacts (name on record, a few attributes), half are new (empty snapshot), so both
    the "record the profile name" branch and the attribute placeholders are exercised.
    """
    phone = f"52155{10_000_000 + i:08d}"
    name = f"Cliente {i}"
    if i % 2:
        return phone, name, Contact(phone, name, {"city": "CDMX", "orders": i % 7, "vip": i % 3 == 0})
    return phone, name, Contact(phone)


def _check(kind: str, outcome: Outcome, resumed: Outcome | None) -> None:
    """The entry took the path it is meant to exercise (guards the benchmark against flow changes)."""
    types = tuple(m.type for m in outcome.outbox)
    expected = {"greeting": ("text",), "pricing": ("template", "media"), "other": ("text",)}[kind]
    problems = []
    if outcome.ignored or outcome.failure or types != expected:
        problems.append(f"outbox {types}, ignored={outcome.ignored}, failure={outcome.failure}")
    if kind == "pricing" and len(outcome.webhooks) != 1:
        problems.append("no webhook")
    if kind == "other" and "Gracias por escribir" not in outcome.outbox[0].content:
        problems.append("not the fallback path")
    if kind == "greeting":
        wait = outcome.wait_after
        if wait is None or wait.kind != "delay" or len(outcome.timers_add) != 1:
            problems.append(f"no delay wait: {wait}")
        effects = [type(e) for e in resumed.effects] if resumed else []
        if resumed is None or effects != [AttributeWrite, OutboxMessage] or resumed.run is None or (
                resumed.run.status != "completed"):
            problems.append(f"resume did not complete the run: {resumed}")
    if problems:
        raise RuntimeError(f"{kind} entry does not exercise its path: {'; '.join(problems)}")


def build_jobs(flow: Flow, events: int) -> tuple[list[Job], dict[str, int]]:
    """Entries totalling `events` events or just over, each checked by running it once (untimed)."""
    jobs: list[Job] = []
    mix = dict.fromkeys(KINDS, 0) | {"resume": 0}
    total = i = 0
    while total < events:
        kind = KINDS[i % len(KINDS)]
        texts = TEXTS[kind]
        text = texts[(i // len(KINDS)) % len(texts)]
        phone, name, contact = _contact(i)
        now_ms = BASE_MS + i * 37
        stream_id = f"{now_ms}-{i % 3}"  # Redis stream ids: "<ms>-<seq>"
        fields = {"source": "whatsapp", "org_id": "acme", "channel_id": "c1",
                  "payload": _webhook_body(i, phone, name, text, now_ms // 1000)}
        parsed = parse_entry(stream_id, fields)
        if len(parsed) != 1 or not isinstance(parsed[0], Message):
            raise RuntimeError(f"entry {i} parsed to {parsed}")
        outcome = interpret(flow, parsed[0], None, contact, now_ms)
        job = Job(stream_id, fields, contact, now_ms)
        resumed = None
        if kind == "greeting":
            timer = outcome.timers_add[0]
            resume_id = f"{timer.due_ms}-{i % 3}"
            resume_fields = timer.resume_fields()  # what the timer loop publishes on nf:incoming when due
            resume = parse_entry(resume_id, resume_fields)
            if len(resume) != 1 or not isinstance(resume[0], Resume):
                raise RuntimeError(f"resume of entry {i} parsed to {resume}")
            resumed = interpret(flow, resume[0], outcome.wait_after, contact, timer.due_ms)
            job = job._replace(resume_id=resume_id, resume_fields=resume_fields, resume_ms=timer.due_ms)
            mix["resume"] += 1
            total += 1
        _check(kind, outcome, resumed)
        jobs.append(job)
        mix[kind] += 1
        total += 1
        i += 1
    return jobs, mix


def interpreter_round(flow: Flow, jobs: list[Job]) -> int:
    """The measured loop; returns elapsed nanoseconds. Kept minimal: it is what the numbers describe."""
    start = time.perf_counter_ns()
    for stream_id, fields, contact, now_ms, resume_id, resume_fields, resume_ms in jobs:
        for event in parse_entry(stream_id, fields):
            outcome = interpret(flow, event, None, contact, now_ms)
            if resume_fields is not None:
                for resume in parse_entry(resume_id or "", resume_fields):
                    interpret(flow, resume, outcome.wait_after, contact, resume_ms)
    return time.perf_counter_ns() - start


def baseline_round(jobs: list[Job]) -> int:
    """The floor: json.loads of each entry's JSON field, nothing else (same number of events)."""
    loads = json.loads
    start = time.perf_counter_ns()
    for job in jobs:
        loads(job.fields["payload"])
        if job.resume_fields is not None:
            loads(job.resume_fields["engine_resume"])
    return time.perf_counter_ns() - start


@contextmanager
def pinned_to_one_core() -> Iterator[int | None]:
    """Run on a single CPU (the highest one allowed, usually the least busy with interrupts); restored after."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    cpu = max(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def _stats(events: int, elapsed_ns: list[int]) -> dict[str, Any]:
    rates = [events * 1e9 / ns for ns in elapsed_ns]
    return {
        "events_per_s": {"median": statistics.median(rates), "min": min(rates), "max": max(rates)},
        "rounds_events_per_s": rates,
        "rounds_seconds": [ns / 1e9 for ns in elapsed_ns],
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
    except OSError:
        return None
    return out.stdout.strip() or None


def profile_round(flow: Flow, jobs: list[Job], top: int = 15) -> None:
    """One extra round under cProfile (after the timed ones): stats file + top entries by tottime on stderr."""
    profiler = cProfile.Profile()
    profiler.runcall(interpreter_round, flow, jobs)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(RESULTS_DIR / "interpreter.prof")
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(top)


def run() -> dict[str, Any]:
    events = int(os.environ.get("BENCH_EVENTS", "50000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    graph: Mapping[str, Any] = json.loads(FLOW_FILE.read_text())
    flow = parse_flow(graph, flow_id="shop_demo", version=1)
    if not flow.valid:
        raise RuntimeError(f"{FLOW_FILE} is invalid: {flow.problems}")

    with pinned_to_one_core() as cpu:
        jobs, mix = build_jobs(flow, events)  # also the warm-up
        total = sum(mix[kind] for kind in (*KINDS, "resume"))
        ours, floor = [], []
        for _ in range(rounds):
            gc.collect()
            floor.append(baseline_round(jobs))
            gc.collect()
            ours.append(interpreter_round(flow, jobs))
        if os.environ.get("BENCH_PROFILE") == "1":
            profile_round(flow, jobs)

    result = _stats(total, ours)
    baseline = _stats(total, floor)
    median = result["events_per_s"]["median"]
    ratio = median / baseline["events_per_s"]["median"]
    passed = median >= TARGET_EVENTS_PER_S
    lo, hi = result["events_per_s"]["min"], result["events_per_s"]["max"]
    summary = (
        f"interpreter: {median:,.0f} events/s median (min {lo:,.0f}, max {hi:,.0f}; {rounds} rounds x {total:,} "
        f"events, cpu {cpu}) | json.loads floor {baseline['events_per_s']['median']:,.0f} events/s, ratio "
        f"{ratio:.3f} | target >= {TARGET_EVENTS_PER_S:,}: {'PASS' if passed else 'FAIL'}"
    )
    return {
        "summary": summary,
        "passed": passed,
        "target_events_per_s": TARGET_EVENTS_PER_S,
        "events_per_round": total,
        "rounds": rounds,
        "mix": mix,
        "flow": str(FLOW_FILE.relative_to(ROOT)),
        **result,
        "baseline_json_loads": baseline,
        "ratio_to_baseline": ratio,
        "environment": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_pinned": cpu,
            "cpus": os.cpu_count(),
            "gc_enabled": gc.isenabled(),
            "git_commit": _git_commit(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
