"""Handoff, business hours and tags (SPEC §5.3) through the real processes: a contact handed to an agent
gets no bot output (its messages are counted as ignored `handoff`) until released by `flow-engine handoff
release` or by a `control=release` entry, whose place in the stream decides a race with a message."""

from __future__ import annotations

import json
import urllib.request

import pytest

from flow_engine.adapters.keys import DLQ, HANDOFFS, INCOMING, WEBHOOKS, Keys
from tests.devstack import Stack
from tests.runtime.conftest import cli, metrics_stack, new_org

DESK = {"nodes": [], "paths": {"path_default": [
    {"type": "action", "action": "send_text", "text": "eco {{message.text}}"},
    {"type": "add_tag", "tag": "soporte"},
    {"type": "add_tag", "tag": "soporte"},
    {"type": "remove_tag", "tag": "lead"},
    {"type": "handoff", "queue": "ventas", "note": "pidió: {{message.text}}"}]}}


stack = pytest.fixture(scope="module", name="stack")(metrics_stack)


def metric(stack: Stack, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics",  # type: ignore[attr-defined]
                                  timeout=5).read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else 0.0


def ignored(stack: Stack, reason: str) -> int:
    return int(stack.redis.hget("fe:stats", f"ignored:{reason}") or 0)


def texts(stack: Stack, org: str) -> list[str]:
    return [e["text"] for e in stack.outbox(org)]


def with_agent(stack: Stack, org: str, phone: str) -> bool:
    raw = stack.redis.get(Keys("fe:wait", "").wait(org, "ch1", phone))
    return raw is not None and json.loads(raw)[5] == "handoff"


def control(org: str, phone: str) -> dict[str, str]:
    return {"source": "test", "org_id": org, "channel_id": "ch1", "control": "release", "contact": phone}


def test_handoff_keeps_the_bot_quiet_until_the_cli_releases_the_contact(stack: Stack) -> None:
    org, phone = new_org(), "5215590000001"
    flow_id = stack.load_flow(org, DESK)
    handoffs, quiet = metric(stack, "nexia_engine_handoffs_total"), ignored(stack, "handoff")
    stack.send(org, phone, "quiero un asesor")
    stack.wait_until(lambda: with_agent(stack, org, phone), 15, "the contact to be with an agent")
    assert texts(stack, org) == ["eco quiero un asesor"]
    events = stack.stream(WEBHOOKS, org)
    assert [(e["type"], json.loads(e["body"])["data"]) for e in events] == [
        ("flow.handoff", {"queue": "ventas", "note": "pidió: quiero un asesor"})]
    body = json.loads(events[0]["body"])
    assert (body["flow_id"], body["path"], body["step_index"], body["contact_phone"], body["channel_id"]) == (
        flow_id, "path_default", 4, phone, "ch1")
    runs = stack.rows("select status, last_step, context from flow_runs where org_id = :org", org=org)
    assert [(r[0], r[1], r[2]["handoff"]) for r in runs] == [
        ("completed", "path_default:4", {"queue": "ventas", "note": "pidió: quiero un asesor"})]
    assert [r[0] for r in stack.rows("select attributes from contacts where org_id = :org", org=org)] == [
        {"tags": ["soporte"]}]
    listed = cli(stack, "handoff", "list", "--org", org, "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (entry["org_id"], entry["channel_id"], entry["contact"], entry["queue"], entry["run_id"]) == (
        org, "ch1", phone, "ventas", body["run_id"])
    assert entry["release_due_ms"] - entry["since_ms"] == 1440 * 60_000
    assert org in cli(stack, "handoff", "list").stdout

    for text in ("hola?", "sigue ahí", "menu"):
        stack.send(org, phone, text)
    stack.settled()
    assert texts(stack, org) == ["eco quiero un asesor"]  # no bot output while with the agent
    assert ignored(stack, "handoff") - quiet == 3
    assert len(stack.rows("select 1 from flow_runs where org_id = :org", org=org)) == 1

    released = cli(stack, "handoff", "release", "--org", org, "--channel", "ch1", "--contact", phone)
    assert released.returncode == 0, released.stderr
    assert released.stdout.startswith("nf:incoming ") and released.stderr == ""
    stack.wait_until(lambda: not with_agent(stack, org, phone), 15, "the release")
    assert stack.redis.zscore(HANDOFFS, json.dumps([org, "ch1", phone], separators=(",", ":"))) is None
    assert cli(stack, "handoff", "list", "--org", org).stdout == f"nobody is with an agent in org {org}\n"
    stack.send(org, phone, "ya volví")
    stack.wait_outbox(org, 2)
    stack.settled()
    assert texts(stack, org) == ["eco quiero un asesor", "eco ya volví"]
    assert metric(stack, "nexia_engine_handoffs_total") - handoffs == 2
    assert stack.stream(DLQ, org) == []


def test_a_control_entry_releases_and_stream_order_decides_a_release_racing_a_message(stack: Stack) -> None:
    org, phone = new_org(), "5215590000002"
    stack.load_flow(org, DESK)
    quiet, stray = ignored(stack, "handoff"), ignored(stack, "not-with-agent")
    stack.send(org, phone, "uno")
    stack.wait_until(lambda: with_agent(stack, org, phone), 15, "the handoff")
    pipe = stack.redis.pipeline(transaction=True)  # written back to back: only the order tells them apart
    stack.send_later(pipe, org, phone, "dos")  # before the release: still the agent's
    pipe.xadd(INCOMING, control(org, phone))
    stack.send_later(pipe, org, phone, "tres")  # after it: the bot's again, and a new handoff
    stack.send_later(pipe, org, phone, "cuatro")  # with the agent again
    pipe.xadd(INCOMING, control(org, phone))
    pipe.xadd(INCOMING, control(org, phone))  # nobody to release
    stack.send_later(pipe, org, phone, "cinco")
    pipe.execute()
    stack.wait_outbox(org, 3)
    stack.settled()
    assert texts(stack, org) == ["eco uno", "eco tres", "eco cinco"]
    assert ignored(stack, "handoff") - quiet == 2
    assert ignored(stack, "not-with-agent") - stray == 1
    assert [json.loads(e["body"])["input_text"] for e in stack.stream(WEBHOOKS, org)] == ["uno", "tres", "cinco"]
    assert with_agent(stack, org, phone)
    assert stack.stream(DLQ, org) == []


def test_a_worker_killed_amid_handoffs_and_releases_duplicates_and_loses_nothing(stack: Stack) -> None:
    org, phones = new_org(), [f"52155920{n:05d}" for n in range(20)]
    stack.load_flow(org, DESK)
    quiet = ignored(stack, "handoff")
    for phone in phones:
        stack.send(org, phone, "m0")
    stack.wait_until(lambda: all(with_agent(stack, org, p) for p in phones), 30, "every contact with an agent")
    pipe = stack.redis.pipeline(transaction=False)
    for round_ in range(3):  # per contact: two messages for the agent, the release, one for the bot
        for phone in phones:
            if round_ < 2:
                stack.send_later(pipe, org, phone, f"m{round_ + 1}")
            else:
                pipe.xadd(INCOMING, control(org, phone))
    for phone in phones:
        stack.send_later(pipe, org, phone, "m3")
    pipe.execute()
    stack["worker0"].restart()  # SIGKILL in the middle of it
    stack.wait_until(lambda: len(stack.outbox(org)) >= 40, 90, "every contact answered twice")
    stack.settled(timeout_s=60)
    for phone in phones:
        assert [e["text"] for e in stack.outbox(org) if e["to"] == phone] == ["eco m0", "eco m3"]
    assert len({e["client_id"] for e in stack.outbox(org)}) == 40
    assert len({e["event_id"] for e in stack.stream(WEBHOOKS, org)}) == len(stack.stream(WEBHOOKS, org)) == 40
    assert ignored(stack, "handoff") - quiet == 40
    assert all(with_agent(stack, org, p) for p in phones)  # m3 handed each over again
    members = {tuple(json.loads(m)) for m in stack.redis.zrange(HANDOFFS, 0, -1) if json.loads(m)[0] == org}
    assert members == {(org, "ch1", p) for p in phones}


def test_a_bad_control_entry_goes_to_the_dlq_with_its_reason(stack: Stack) -> None:
    org = new_org()
    entry_id = stack.redis.xadd(INCOMING, {"org_id": org, "channel_id": "ch1", "control": "mute", "contact": "521"})
    dlq = stack.wait_until(lambda: stack.stream(DLQ, org), 15, "the DLQ entry")
    assert [(e["error"], e["error_detail"], e["source_id"]) for e in dlq] == [
        ("invalid-payload", 'control must be "release", got "mute"', entry_id)]


def test_business_hours_open_and_closed_through_the_engine(stack: Stack) -> None:
    org, phone = new_org(), "5215590000003"
    always = {day: "00:00-24:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    stack.load_flow(org, {"nodes": [{"type": "intent", "map": {"greeting": "open", "default": "closed"}}], "paths": {
        "open": [{"type": "business_hours", "timezone": "America/Mexico_City", "hours": always},
                 {"type": "action", "action": "send_text", "text": "abierto"}],
        "closed": [{"type": "business_hours", "timezone": "Europe/Madrid", "hours": {"sun": None},
                    "closed_path": "after"}, {"type": "action", "action": "send_text", "text": "nunca"}],
        "after": [{"type": "add_tag", "tag": "fuera-de-horario"},
                  {"type": "action", "action": "send_text", "text": "cerrado"}]}})
    stack.send(org, phone, "hola")
    stack.wait_outbox(org, 1)
    stack.send(org, phone, "precio")
    stack.wait_outbox(org, 2)
    stack.settled()
    assert texts(stack, org) == ["abierto", "cerrado"]
    assert [r[0] for r in stack.rows("select attributes from contacts where org_id = :org", org=org)] == [
        {"tags": ["fuera-de-horario"]}]
