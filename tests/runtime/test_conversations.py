"""Conversation control through the real processes (SPEC §5.1): messages held during a delay are all
answered, in order, once — a worker SIGKILLed while they are held included; the held limit; waits
that expire; interrupt words; a wait stored by the previous engine; a flow as the builder publishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flow_engine.adapters.keys import DLQ, Keys
from tests.devstack import Stack
from tests.runtime.conftest import new_org

MAX_HELD = 35
MAX_STEPS = 100
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def stack(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(redis_url, database_url, tmp_path_factory.mktemp("logs"),
              env={"FLOW_ENGINE_MAX_HELD": str(MAX_HELD), "FLOW_ENGINE_INTERRUPT_WORDS": "menu,inicio",
                   "FLOW_ENGINE_MAX_STEPS": str(MAX_STEPS)})
    s.start()
    yield s
    s.stop()


def echo_flow(delay_ms: int) -> dict[str, object]:
    return {"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "eco {{message.text}}"},
        {"type": "delay", "ms": delay_ms},
        {"type": "action", "action": "send_text", "text": "tarde {{message.text}}"}]}}


def texts(stack: Stack, org: str) -> list[str]:
    return [e["text"] for e in stack.outbox(org)]


def ignored(stack: Stack, reason: str) -> int:
    return int(stack.redis.hget("fe:stats", f"ignored:{reason}") or 0)


def test_30_back_to_back_messages_on_a_flow_with_a_delay_are_all_answered_in_order_once(stack: Stack) -> None:
    org, phone = new_org(), "5215580000001"
    stack.load_flow(org, echo_flow(200))
    pipe = stack.redis.pipeline(transaction=False)
    for n in range(30):
        stack.send_later(pipe, org, phone, f"m{n}")
    pipe.execute()
    stack.wait_outbox(org, 60, timeout_s=60)
    stack.settled()
    time.sleep(0.5)  # a duplicate would show now
    assert texts(stack, org) == [text for n in range(30) for text in (f"eco m{n}", f"tarde m{n}")]
    assert len({e["client_id"] for e in stack.outbox(org)}) == 60
    assert [e["orig_text"] for e in stack.outbox(org)] == [f"m{n}" for n in range(30) for _ in range(2)]
    runs = stack.rows("select status, last_step from flow_runs where org_id = :org", org=org)
    assert sorted(tuple(r) for r in runs) == [("completed", "path_default:2")] * 30
    assert stack.redis.exists(Keys.held(org, "ch1", phone)) == 0


def test_a_worker_killed_while_messages_are_held_loses_none(stack: Stack) -> None:
    org, phone = new_org(), "5215580000002"
    stack.load_flow(org, echo_flow(1500))
    for n in range(10):
        stack.send(org, phone, f"k{n}")
    held = Keys.held(org, "ch1", phone)
    stack.wait_until(lambda: stack.redis.llen(held) == 9, 15, "nine messages held")
    stack["worker0"].restart(signal.SIGKILL)
    stack.wait_outbox(org, 20, timeout_s=90)
    stack.settled(timeout_s=30)
    time.sleep(0.5)
    assert texts(stack, org) == [text for n in range(10) for text in (f"eco k{n}", f"tarde k{n}")]
    assert len({e["client_id"] for e in stack.outbox(org)}) == 20
    assert stack.redis.exists(held) == 0
    assert stack.stream(DLQ, org) == []


def test_past_the_held_limit_a_message_goes_to_the_dlq_and_the_held_ones_are_answered(stack: Stack) -> None:
    org, phone = new_org(), "5215580000003"
    stack.load_flow(org, {"nodes": [{"type": "intent", "map": {"greeting": "hello", "default": "other"}}], "paths": {
        "hello": [{"type": "delay", "seconds": 3}, {"type": "action", "action": "send_text", "text": "hola"}],
        "other": [{"type": "action", "action": "send_text", "text": "r {{message.text}}"}]}})
    stack.send(org, phone, "hola")
    ids = [stack.send(org, phone, f"x{n}") for n in range(MAX_HELD + 2)]
    dlq = stack.wait_until(lambda: len(stack.stream(DLQ, org)) == 2 and stack.stream(DLQ, org), 15, "2 DLQ entries")
    assert [(e["error"], e["source_id"]) for e in dlq] == [("held-limit", ids[-2]), ("held-limit", ids[-1])]
    assert dlq[0]["error_detail"] == f"{MAX_HELD} messages already held while the run is in a delay"
    stack.wait_outbox(org, MAX_HELD + 1)
    stack.settled()
    assert texts(stack, org) == ["hola"] + [f"r x{n}" for n in range(MAX_HELD)]


def test_a_wait_expires_and_the_next_message_enters_the_flow_afresh(stack: Stack) -> None:
    org, phone = new_org(), "5215580000004"
    stack.load_flow(org, {"expire_after_minutes": 0.02, "nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "¿código?"},
        {"type": "wait_for_reply", "pattern": "^\\d{6}$"},
        {"type": "action", "action": "send_text", "text": "gracias"}]}})
    before = ignored(stack, "no-match")
    stack.send(org, phone, "hola")
    stack.wait_outbox(org, 1)
    stack.send(org, phone, "no sé")
    stack.wait_until(lambda: stack.rows("select 1 from flow_runs where org_id = :org and status = 'expired'", org=org),
                     10, "the run to expire")
    assert ignored(stack, "no-match") - before == 1
    stack.send(org, phone, "123456")  # no run to reply to any more: it enters the flow
    stack.wait_outbox(org, 2)
    stack.settled()
    assert texts(stack, org) == ["¿código?", "¿código?"]
    runs = stack.rows("select status, last_step, context from flow_runs where org_id = :org order by created_at",
                      org=org)
    assert [(r.status, r.last_step, r.context["ended"] if r.status != "running" else None) for r in runs] == [
        ("expired", "path_default:1", "expired"), ("running", "path_default:1", None)]
    assert runs[0].context["expired_after_min"] == 0.02


def test_an_interrupt_word_ends_the_paused_run_and_starts_afresh(stack: Stack) -> None:
    org, phone = new_org(), "5215580000005"
    stack.load_flow(org, {"nodes": [{"type": "intent", "keywords": {"menu": ["menu"]},
                                     "map": {"menu": "menu", "default": "ask"}}], "paths": {
        "ask": [{"type": "action", "action": "send_text", "text": "¿código?"}, {"type": "wait_for_reply"}],
        "menu": [{"type": "action", "action": "send_text", "text": "1) precios 2) ayuda"}]}})
    stack.send(org, phone, "hola")
    stack.wait_outbox(org, 1)
    stack.send(org, phone, " Menú ")  # FLOW_ENGINE_INTERRUPT_WORDS of this stack: menu,inicio
    stack.wait_outbox(org, 2)
    stack.settled()
    assert texts(stack, org) == ["¿código?", "1) precios 2) ayuda"]
    runs = stack.rows("select status, last_step, context from flow_runs where org_id = :org order by created_at",
                      org=org)
    assert [(r.status, r.last_step) for r in runs] == [("interrupted", "ask:1"), ("completed", "menu:0")]
    assert runs[0].context["interrupted_by"] == "Menú"
    assert stack.redis.exists(Keys("fe:wait", "nf:incoming:scheduled").wait(org, "ch1", phone)) == 0


def test_a_wait_stored_by_the_previous_engine_keeps_working_and_gets_the_default_expiry(stack: Stack) -> None:
    org, phone = new_org(), "5215580000006"
    flow_id = stack.load_flow(org, {"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "¿ok?"},
        {"type": "wait_for_reply", "pattern": "^ok$"},
        {"type": "action", "action": "send_text", "text": "hecho: {{message.text}}"}]}})
    wait_key = Keys("fe:wait", "nf:incoming:scheduled").wait(org, "ch1", phone)
    legacy = ["run-legacy", flow_id, 1, "path_default", 1, "reply", "tok-legacy", None, "hola", "default"]
    stack.redis.set(wait_key, json.dumps(legacy))  # as today's engine stores a wait without timeout
    sent_ms = int(time.time() * 1000)
    stack.send(org, phone, "nope")
    stack.settled()
    timers = stack.redis.zrange("nf:incoming:scheduled", 0, -1, withscores=True)
    mine = [(json.loads(member), due) for member, due in timers if phone in member]
    assert [m[0][:2] for m in mine] == [["expire", "tok-legacy"]]
    assert abs(mine[0][1] - (sent_ms + 1440 * 60_000)) < 60_000
    stack.send(org, phone, "ok")
    stack.wait_outbox(org, 1)
    stack.settled()
    assert texts(stack, org) == ["hecho: ok"]
    assert stack.redis.exists(wait_key) == 0
    assert [m for m, _due in stack.redis.zrange("nf:incoming:scheduled", 0, -1, withscores=True) if phone in m] == []


BUILDER_FLOW = {
    "name": "Bienvenida", "version": 4,
    "nodes": [{"id": "t1", "type": "trigger", "on": "message_in"},
              {"id": "c1", "type": "comment", "text": "drawn by the builder"},
              {"id": "n1", "type": "intent", "map": {"greeting": "hi", "default": "hi"}}],
    "paths": {"hi": [{"type": "action", "action": "send_text", "text": "¡Hola!"},
                     {"type": "action", "action": "send_media", "asset": "https://cdn.example.org/bienvenida.png"},
                     {"type": "action", "action": "send_media", "asset": "https://cdn.example.org/banner"}]},
}


def test_a_flow_as_the_builder_publishes_it_runs_end_to_end(stack: Stack) -> None:
    org = new_org()
    flow_id = stack.load_flow(org, BUILDER_FLOW)
    stack.send(org, "5215580000007", "hola")
    outbox = stack.wait_outbox(org, 3)
    assert [(e["type"], e.get("text") or json.loads(e["media"])) for e in outbox] == [
        ("text", "¡Hola!"),
        ("media", {"kind": "image", "link": "https://cdn.example.org/bienvenida.png"}),
        ("media", {"kind": "image", "link": "https://cdn.example.org/banner"})]
    stack.settled()
    runs = stack.rows("select status, last_step, flow_id from flow_runs where org_id = :org", org=org)
    assert [tuple(r) for r in runs] == [("completed", "hi:2", flow_id)]
    assert stack.stream(DLQ, org) == []


def test_waits_upgrade_gives_timerless_waits_of_the_previous_engine_their_expiry_once(
    stack: Stack, redis_url: str
) -> None:
    org = new_org()
    keys = Keys("fe:wait", "nf:incoming:scheduled")
    stored = {  # as today's engine stores them: a reply wait without timeout, one with, a delay
        "5215580000010": ["r1", "f", 1, "p", 1, "reply", "tok-a", None, "hola", "default"],
        "5215580000011": ["r2", "f", 1, "p", 1, "reply", "tok-b", 1_900_000_000_000, "hola", "default"],
        "5215580000012": ["r3", "f", 1, "p", 0, "delay", "tok-c", 1_900_000_000_000, "hola", "default"],
    }
    for phone, wait in stored.items():
        stack.redis.set(keys.wait(org, "ch:1", phone), json.dumps(wait))  # a channel id with a colon
    env = {**os.environ, "REDIS_URL": redis_url}
    started_ms = int(time.time() * 1000)
    first = subprocess.run([str(BIN / "flow-engine"), "waits", "upgrade"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert first.returncode == 0, first.stderr
    assert first.stdout.endswith(" 1 given an expiry in 1440 min\n")
    upgraded = json.loads(stack.redis.get(keys.wait(org, "ch:1", "5215580000010")))
    assert upgraded[:7] + upgraded[8:] == stored["5215580000010"][:7] + stored["5215580000010"][8:] + [0, 1, 0]
    assert abs(upgraded[7] - (started_ms + 1440 * 60_000)) < 60_000
    assert stack.redis.zscore("nf:incoming:scheduled",
                              json.dumps(["expire", "tok-a", org, "ch:1", "5215580000010"], separators=(",", ":")))
    for phone in ("5215580000011", "5215580000012"):
        assert json.loads(stack.redis.get(keys.wait(org, "ch:1", phone))) == stored[phone]
    again = subprocess.run([str(BIN / "flow-engine"), "waits", "upgrade"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert again.stdout.endswith(" 0 given an expiry in 1440 min\n")
    for phone in stored:
        stack.redis.delete(keys.wait(org, "ch:1", phone))
    stack.redis.zrem("nf:incoming:scheduled",
                     json.dumps(["expire", "tok-a", org, "ch:1", "5215580000010"], separators=(",", ":")))


def test_a_run_looping_through_its_timeout_path_fails_at_the_step_cap_and_is_dead_lettered(stack: Stack) -> None:
    org, phone = new_org(), "5215580000013"
    stack.load_flow(org, {"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "¿sigues ahí?"},
        {"type": "wait_for_reply", "timeout_seconds": 0.001, "timeout_path": "path_default"}]}})
    stack.send(org, phone, "hola")
    dlq = stack.wait_until(lambda: stack.stream(DLQ, org), 60, "the loop-limit DLQ entry")
    assert [(e["error"], e["error_detail"]) for e in dlq] == [
        ("loop-limit", f"paths.path_default[0]: loop-limit: more than {MAX_STEPS} steps without a reply from the "
                       "contact")]
    stack.settled()
    assert texts(stack, org) == ["¿sigues ahí?"] * (MAX_STEPS // 2)  # two steps a pass, then the cap
    runs = stack.rows("select status, last_step, context from flow_runs where org_id = :org", org=org)
    assert [(r.status, r.last_step, r.context["ended"]) for r in runs] == [("failed", "path_default:0", "loop-limit")]
