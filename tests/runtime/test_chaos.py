"""Chaos: inbound events over many contacts, mixing the shop demo, verification and echo flows (delays,
waits, replies, timeouts, messages held during delays) and a loud org's backlog as large as all the
rest, while a driver SIGKILLs a random process — a
bridge, a worker child, the whole worker, a timer loop — every 1 to 3 s and restarts it. Afterwards
the streams and tables are checked against the model (tests/runtime/model.py): every expected outbox
entry and webhook event exactly once, per-contact order, every run's final status, every attribute;
nothing pending, no lane holding events, nothing in the DLQ.

CI runs a short form; `make chaos` runs 20,000 events over 2,000 contacts (CHAOS_EVENTS, CHAOS_CONTACTS).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from flow_engine.adapters.keys import DLQ, INCOMING, WEBHOOKS
from flow_engine.adapters.scripts import connect
from flow_engine.core.graph import parse_flow
from tests.devstack import Stack
from tests.runtime.conftest import graph_of, new_org
from tests.runtime.model import ContactModel

EVENTS = int(os.environ.get("CHAOS_EVENTS", "1500"))
CONTACTS = int(os.environ.get("CHAOS_CONTACTS", str(max(EVENTS // 10, 1))))
ROUNDS = EVENTS // CONTACTS
# A loud org: a backlog as large as all the others' traffic, written at once before the first round
# (a campaign's replies), on a one-step flow, while the kills land and the other orgs go on.
LOUD_EVENTS = int(os.environ.get("CHAOS_LOUD_EVENTS", str(EVENTS)))
LOUD_CONTACTS = max(LOUD_EVENTS // 20, 1)
ONE_STEP = {"nodes": [], "paths": {"path_default": [{"type": "action", "action": "send_text", "text": "ok"}]}}
ROUND_S = float(os.environ.get("CHAOS_ROUND_S", "0.2"))  # faster than the engine: it works saturated, as kills land
TIMEOUT_S = 8

SHOP_TEXTS = ["cuanto cuesta el plan", "gracias", "quiero ayuda con mi pedido", "precio"]
REPLIER = ["hola", "no sé", "123456", "hola", "111111", "hola", "ni idea", "222222", "hola", "333333"]
SILENT = ["hola", "123456", "hola", "no", "654321", "hola", "999999", "hola", "000000", "hola"]


ECHO = {"nodes": [], "paths": {"path_default": [
    {"type": "action", "action": "send_text", "text": "eco {{message.text}}"},
    {"type": "delay", "ms": 700},
    {"type": "action", "action": "send_text", "text": "tarde {{message.text}}"}]}}


def scripts(rng: random.Random) -> list[tuple[str, list[str]]]:
    """Per contact: its flow ("shop", "verify" or "echo") and its messages. Only messages whose
    outcome does not depend on timing: a shop contact's "hola" (a 1.5 s delay follows) holds its later
    messages, which enter the flow in turn when the delay ends; a verification reply enters the stream
    one round after its prompt, before the prompt's 8 s timeout can fire (the timer enters the stream
    when due, behind it); an echo contact writes every round, faster than its 700 ms delays, so most
    of its messages are held — many of them at any moment, as kills land."""
    plans = []
    for n in range(CONTACTS):
        if n % 5 in (0, 1):
            texts = [rng.choice(SHOP_TEXTS) for _ in range(ROUNDS)]
            texts[rng.randrange(ROUNDS)] = "hola"
            plans.append(("shop", texts))
        elif n % 5 == 4:
            plans.append(("echo", [f"e{i}" for i in range(ROUNDS)]))
        else:
            base = REPLIER if n % 5 == 2 else SILENT
            plans.append(("verify", [base[i % len(base)] for i in range(ROUNDS - len(base))] + base))
    return plans


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def kill_randomly(stack: Stack, stop: threading.Event, rng: random.Random, kills: Counter[str]) -> None:
    """Every 1 to 3 s: a bridge, a worker child, the whole worker or a timer loop, each kind alike."""
    while not stop.wait(rng.uniform(1, 3)):
        kind = rng.choice(["bridge", "worker-child", "worker", "scheduler"])
        if kind == "worker-child":
            proc = stack["worker0"].proc
            pids = children_of(proc.pid) if proc is not None else []
            if pids:
                subprocess.run(["kill", "-9", str(rng.choice(pids))], check=False)
                kills[kind] += 1
            continue
        name = "worker0" if kind == "worker" else f"{kind}{rng.randrange(2)}"
        stack[name].restart(signal.SIGKILL)
        kills[name] += 1


def wait_for_outbox(stack: Stack, orgs: tuple[str, ...], expected: int, stalled_s: float = 30) -> None:
    """Until the expected entries are there, or nothing new arrived for `stalled_s` (then the checks
    below say what is missing)."""
    seen, since = -1, time.monotonic()
    while True:
        count = sum(len(stack.outbox(org)) for org in orgs)
        if count >= expected:
            return
        if count != seen:
            seen, since = count, time.monotonic()
        elif time.monotonic() - since > stalled_s:
            return
        time.sleep(0.5)


@pytest.mark.parametrize("concurrency", [2, 3])
def test_chaos(concurrency: int, redis_url: str, database_url: str, tmp_path: Path) -> None:
    connect(redis_url).flushdb()
    stack = Stack(redis_url, database_url, tmp_path, concurrency=concurrency, bridges=2, schedulers=2)
    stack.start()
    try:
        run_chaos(stack, random.Random(concurrency))
    finally:
        stack.stop()


def run_chaos(stack: Stack, rng: random.Random) -> None:
    shop_org, verify_org, echo_org, loud_org = new_org(), new_org(), new_org(), new_org()
    verify_graph = graph_of("verification_code")
    verify_graph["paths"]["ask"][1]["timeout_seconds"] = TIMEOUT_S
    flows = {"shop": (shop_org, graph_of("shop_demo")), "verify": (verify_org, verify_graph),
             "echo": (echo_org, ECHO), "loud": (loud_org, ONE_STEP)}
    flow_ids = {kind: stack.load_flow(org, graph) for kind, (org, graph) in flows.items()}
    parsed = {kind: parse_flow(graph, flow_id=flow_ids[kind], version=1) for kind, (_org, graph) in flows.items()}
    plans = scripts(rng)
    models = [ContactModel(parsed[kind], flows[kind][0], "ch1", f"52100{n:07d}") for n, (kind, _) in enumerate(plans)]
    loud = [ContactModel(parsed["loud"], loud_org, "ch1", f"52177{n:07d}") for n in range(LOUD_CONTACTS)]
    pipe = stack.redis.pipeline(transaction=False)
    for n in range(LOUD_EVENTS):
        stack.send_later(pipe, loud_org, loud[n % LOUD_CONTACTS].phone, f"l{n}")
    for n, entry_id in enumerate(pipe.execute()):
        loud[n % LOUD_CONTACTS].message(entry_id, f"l{n}")

    kills: Counter[str] = Counter()
    stop = threading.Event()
    killer = threading.Thread(target=kill_randomly, args=(stack, stop, rng, kills))
    killer.start()
    try:
        for round_no in range(ROUNDS):  # one message per contact per round; its stream id feeds the model
            began = time.monotonic()
            pipe = stack.redis.pipeline(transaction=False)
            for model, (_kind, messages) in zip(models, plans, strict=True):
                stack.send_later(pipe, model.org_id, model.phone, messages[round_no])
            for model, (_kind, messages), entry_id in zip(models, plans, pipe.execute(), strict=True):
                model.message(entry_id, messages[round_no])
            time.sleep(max(0.0, ROUND_S - (time.monotonic() - began)))
        models += loud
        for model in models:
            model.fire_timers()
        expected_outbox = sum(len(m.outbox) for m in models)
        orgs = (shop_org, verify_org, echo_org, loud_org)
        wait_for_outbox(stack, orgs, expected_outbox)
    finally:
        stop.set()
        killer.join()
    stack.settled(timeout_s=60)
    time.sleep(1)  # anything late and duplicated would show up now

    outbox = [e for o in orgs for e in stack.outbox(o)]
    counts = Counter(e["client_id"] for e in outbox)
    assert [c for c, n in counts.items() if n > 1] == [], "duplicated outbox entries"
    expected_ids = {client_id for m in models for client_id, _text in m.outbox}
    missing, extra = expected_ids - set(counts), set(counts) - expected_ids
    assert not missing and not extra, f"missing {len(missing)}, extra {len(extra)}"
    for model in models:
        actual = [(e["client_id"], e["text"] if e["type"] == "text" else e["type"]) for e in outbox
                  if e["org_id"] == model.org_id and e["to"] == model.phone]
        assert actual == model.outbox, f"order or content of {model.phone}"
    webhooks = Counter(e["event_id"] for e in stack.stream(WEBHOOKS) if e["org_id"] in orgs)
    assert webhooks == Counter(w for m in models for w in m.webhooks)
    runs = {r.id: (r.status, r.last_step) for r in stack.rows(
        "select id, status, last_step from flow_runs where org_id in (:a, :b, :c, :d)", a=shop_org, b=verify_org,
        c=echo_org, d=loud_org)}
    assert runs == {run_id: state for m in models for run_id, state in m.runs.items()}
    attributes = {(r.org_id, r.phone): r.attributes for r in stack.rows(
        "select org_id, phone, attributes from contacts where org_id in (:a, :b, :c, :d)", a=shop_org, b=verify_org,
        c=echo_org, d=loud_org)}
    assert attributes == {(m.org_id, m.phone): m.attributes for m in models if m.attributes}
    assert stack.redis.xpending(INCOMING, "engine")["pending"] == 0
    assert [k for k in stack.redis.scan_iter("fe:lane:*") if not k.endswith((":lock", ":armed"))] == []
    assert stack.stream(DLQ) == []
    assert list(stack.redis.scan_iter("fe:held:*")) == []  # every held message was released
    assert sum(kills.values()) >= 3, kills
    report = {"events": sum(len(p[1]) for p in plans) + LOUD_EVENTS, "contacts": CONTACTS + LOUD_CONTACTS,
              "loud_backlog": LOUD_EVENTS, "kills": dict(kills),
              "held_at_most": max(m.most_held for m in models),
              "outbox": len(outbox), "webhooks": sum(webhooks.values()), "runs": len(runs), "lost": 0, "duplicated": 0}
    print("chaos:", json.dumps(report))
