"""Order, races and crashes through the real processes: nothing lost, nothing duplicated, in order."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from flow_engine.adapters.keys import DLQ, INCOMING
from tests.devstack import Stack
from tests.runtime.conftest import graph_of, new_org

ECHO = {"nodes": [], "paths": {"path_default": [{"type": "action", "action": "send_text", "text": "{{message.text}}"}]}}


@pytest.fixture(scope="module")
def stack(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Three worker processes (prefork -c 3), two bridges and two timer loops."""
    s = Stack(redis_url, database_url, tmp_path_factory.mktemp("logs"), concurrency=3, bridges=2, schedulers=2)
    s.start()
    yield s
    s.stop()


def echoes_by_contact(stack: Stack, org: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for entry in stack.outbox(org):
        result.setdefault(entry["to"], []).append(entry["text"])
    return result


def test_per_contact_order_with_three_worker_processes(stack: Stack) -> None:
    org = new_org()
    stack.load_flow(org, ECHO)
    phones = [f"5215560{n:04d}" for n in range(10)]
    for n in range(50):  # each contact sends 50 messages back to back, interleaved with the others
        for phone in phones:
            stack.send(org, phone, f"{phone}-{n}")
    stack.wait_outbox(org, 500, timeout_s=60)
    stack.settled()
    assert echoes_by_contact(stack, org) == {phone: [f"{phone}-{n}" for n in range(50)] for phone in phones}
    assert len({e["client_id"] for e in stack.outbox(org)}) == 500


def test_200_replies_arriving_at_their_timeout_instant_each_resolve_once(stack: Stack) -> None:
    org = new_org()
    graph = graph_of("verification_code")
    graph["paths"]["ask"][1]["timeout_seconds"] = 2
    stack.load_flow(org, graph)
    phones = [f"5215570{n:04d}" for n in range(200)]
    for phone in phones:
        stack.send(org, phone, "hola")
    stack.wait_outbox(org, 200)
    stack.settled()
    due_by_phone = {}
    for member, score in stack.redis.zrange("nf:incoming:scheduled", 0, -1, withscores=True):
        timer = json.loads(member)
        if timer[2] == org:
            due_by_phone[timer[4]] = score / 1000
    assert len(due_by_phone) == 200
    for phone in sorted(phones, key=due_by_phone.__getitem__):
        time.sleep(max(0.0, due_by_phone[phone] - time.time()))
        stack.send(org, phone, "123456")
    stack.wait_outbox(org, 400, timeout_s=30)
    stack.settled()
    time.sleep(0.5)
    texts = echoes_by_contact(stack, org)
    confirmed = [p for p in phones if texts[p][1:] == ["¡Código recibido: 123456! Gracias."]]
    expired = [p for p in phones if texts[p][1:] == ["No recibí tu código a tiempo. Escribe de nuevo para reintentar."]]
    # A reply that lost the race starts a new run, whose prompt is a third message: count resolutions only.
    resolved = {p: [t for t in texts[p] if not t.startswith("Envíame")] for p in phones}
    assert all(len(r) == 1 for r in resolved.values()), {p: r for p, r in resolved.items() if len(r) != 1}
    assert len(confirmed) + len(expired) + sum(1 for p in phones if len(texts[p]) == 3) == 200
    runs = stack.rows("select status, count(*) from flow_runs where org_id = :org and last_step in "
                      "('ask:4', 'expired:0') group by status", org=org)
    assert [tuple(r) for r in runs] == [("completed", 200)]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_killing_every_process_mid_stream_loses_and_duplicates_nothing(stack: Stack) -> None:
    org, timer_org = new_org(), new_org()
    stack.load_flow(org, ECHO)
    graph = graph_of("verification_code")
    graph["paths"]["ask"][1]["timeout_seconds"] = 1
    stack.load_flow(timer_org, graph)
    phones = [f"5215580{n:04d}" for n in range(30)]
    waiting = [f"5215590{n:04d}" for n in range(30)]

    def produce() -> None:
        for n in range(20):
            for phone in phones:
                stack.send(org, phone, f"{phone}-{n}")
            if n < len(waiting) // 2:
                stack.send(timer_org, waiting[2 * n], "hola")
                stack.send(timer_org, waiting[2 * n + 1], "hola")
            time.sleep(0.25)

    producer = threading.Thread(target=produce)
    producer.start()
    kills = [("bridge0", None), ("worker0", "child"), ("scheduler0", None), ("worker0", None), ("bridge1", None),
             ("scheduler1", None)]
    for name, what in kills:
        time.sleep(0.7)
        process = stack[name]
        if what == "child":
            assert process.proc is not None
            workers = _children(process.proc.pid)
            assert workers, "the worker has no children to kill"
            subprocess.run(["kill", "-9", str(workers[0])], check=True)
        else:
            process.restart(signal.SIGKILL)
    producer.join()
    stack.wait_outbox(org, 600, timeout_s=60)
    stack.wait_outbox(timer_org, 60, timeout_s=60)
    stack.settled(timeout_s=30)
    time.sleep(1.5)
    assert echoes_by_contact(stack, org) == {phone: [f"{phone}-{n}" for n in range(20)] for phone in phones}
    timeouts = echoes_by_contact(stack, timer_org)
    assert timeouts == {phone: ["Envíame el código de 6 dígitos que recibiste.",
                                "No recibí tu código a tiempo. Escribe de nuevo para reintentar."] for phone in waiting}
    everything = stack.outbox()
    assert len({e["client_id"] for e in everything}) == len(everything)
    assert stack.stream(DLQ, org) == [] and stack.stream(DLQ, timer_org) == []
    assert stack.redis.xpending(INCOMING, "engine")["pending"] == 0
