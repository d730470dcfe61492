"""Hostile entries through the real processes, as an attacker with write access to nf:incoming (any
producer service, or a bug in one) or a hand-edited DLQ entry would send them. Each attack stopped or
crossed tenants on the engine before it was hardened; here the engine stays up, answers every good
message, and nothing crosses."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from flow_engine.adapters.keys import DLQ, INCOMING, STATS, WEBHOOKS
from flow_engine.core.ids import derive
from tests.devstack import BIN, Stack
from tests.runtime.conftest import new_org

ECHO = {"nodes": [], "paths": {"path_default": [
    {"type": "action", "action": "send_text", "text": "eco: {{message.text}}"}]}}
ASK = {"nodes": [], "paths": {
    "path_default": [
        {"type": "action", "action": "send_text", "text": "tu código"},
        {"type": "wait_for_reply", "pattern": "\\b\\d{6}\\b", "timeout_seconds": 30, "timeout_path": "late"},
        {"type": "action", "action": "send_text", "text": "gracias"}],
    "late": [{"type": "action", "action": "send_text", "text": "tarde"},
             {"type": "action", "action": "webhook", "data": {"expired": True}}]}}


def tagged(tag: str) -> dict[str, Any]:
    return {"nodes": [], "paths": {"path_default": [
        {"type": "set_attribute", "key": "org", "value": tag},
        {"type": "action", "action": "send_text", "text": f"{tag}: tu código"},
        {"type": "wait_for_reply", "pattern": "\\b\\d{6}\\b"},
        {"type": "action", "action": "send_text", "text": f"{tag}: gracias"}]}}


def texts(stack: Stack, org: str) -> list[tuple[str, str, str]]:
    return [(e["channel_id"], e["to"], e["text"]) for e in stack.outbox(org)]


def dlq_of(stack: Stack, org: str) -> list[dict[str, str]]:
    return [fields for _id, fields in stack.redis.xrange(DLQ) if fields.get("org_id") == org]


def alive(stack: Stack) -> bool:
    return all(p.proc is not None and p.proc.poll() is None and p.starts == 1 for p in stack.processes.values())


def test_a_lone_surrogate_or_odd_digits_stop_nobody(stack: Stack) -> None:
    org = new_org()
    stack.load_flow(org, ECHO)
    stack.send(org, "5215550001", "antes")
    stack.send(org, "5215550002", "hola \ud800 mundo")  # a JSON "\ud800" escape: no UTF-8 encodes it
    for index in ("²", "٠"):  # digits to str.isdigit(), not to int() or not ASCII
        fields = {**stack._entry(org, "5215550003", "replay", None, "ch1"), "replay_index": index,
                  "replay_key": "1-0/0"}
        stack.redis.xadd(INCOMING, fields)
    stack.send(org, "5215550004", "después")
    stack.wait_outbox(org, 3)
    stack.settled()
    assert sorted(texts(stack, org)) == [("ch1", "5215550001", "eco: antes"),
                                         ("ch1", "5215550002", "eco: hola \ufffd mundo"),
                                         ("ch1", "5215550004", "eco: después")]
    dlq = dlq_of(stack, org)
    assert [(e["error"], e["replay_index"]) for e in dlq] == [("invalid-payload", "²"), ("invalid-payload", "٠")]
    assert all(e["error_detail"].startswith("replay_* fields without the engine's signature") for e in dlq)
    assert alive(stack)


def test_a_storm_of_forged_resumes_fires_no_timeout(stack: Stack) -> None:
    org, victim = new_org(), "5215550100"
    stack.load_flow(org, ASK)
    entry_id = stack.send(org, victim, "hola")
    stack.wait_outbox(org, 1)
    stack.settled()
    before = int(stack.redis.hget(STATS, "ignored:forged-resume") or 0)
    # The exact token the timer carries (it derives from the stream id) and 2,000 guesses around it.
    token = derive(f"{entry_id}/0", "timer", size_bytes=8)
    tokens = [token, *(secrets.token_hex(8) for _ in range(2000))]
    pipe = stack.redis.pipeline(transaction=False)
    for guess in tokens:
        member = json.dumps(["timeout", guess, org, "ch1", victim], separators=(",", ":"))
        pipe.xadd(INCOMING, {"source": "engine", "org_id": org, "channel_id": "ch1", "engine_resume": member,
                             "due_ms": "0"})
    pipe.execute()
    stack.settled(timeout_s=60)
    assert texts(stack, org) == [("ch1", victim, "tu código")]  # no "tarde"
    assert stack.stream(WEBHOOKS, org) == []
    assert int(stack.redis.hget(STATS, "ignored:forged-resume") or 0) - before == 2001
    run = stack.rows("select status, last_step from flow_runs where org_id = :o", o=org)
    assert [tuple(r) for r in run] == [("running", "path_default:1")]
    stack.send(org, victim, "es 123456")  # the real contact still gets its answer
    stack.wait_outbox(org, 2)
    assert texts(stack, org)[1] == ("ch1", victim, "gracias")


def test_composite_keys_and_ids_never_collide_across_tenants(stack: Stack) -> None:
    base, phone = new_org(), "5215550200"
    # fe:wait:{org}:{channel}:{contact}: org "X:b" + channel "c" and org "X" + channel "b:c"
    left, right = (f"{base}:b", "c"), (base, "b:c")
    stack.load_flow(left[0], tagged("L"))
    stack.load_flow(right[0], tagged("R"))
    stack.send(left[0], phone, "hola", channel=left[1])
    stack.wait_outbox(left[0], 1)
    stack.send(right[0], phone, "hola", channel=right[1])
    stack.wait_outbox(right[0], 1)
    stack.send(right[0], phone, "123456", channel=right[1])  # only the right one replies
    stack.wait_outbox(right[0], 2)
    # fe:seen:{org}:{wamid}: org "Yx:y" + id "z" and org "Yx" + id "y:z" are two messages
    seen_a, seen_b = f"{base}x:y", f"{base}x"
    for org in (seen_a, seen_b):
        stack.load_flow(org, ECHO)
    stack.send(seen_a, phone, "uno", wamid="z")
    stack.send(seen_b, phone, "dos", wamid="y:z")
    # derived ids: org "Zp" + contact "q/r" and org "Zp/q" + contact "r" are two contacts
    slash_a, slash_b = f"{base}p", f"{base}p/q"
    stack.load_flow(slash_a, tagged("A"))
    stack.load_flow(slash_b, tagged("B"))
    stack.send(slash_a, "q/r", "hola")
    stack.send(slash_b, "r", "hola")
    for org in (seen_a, seen_b, slash_a, slash_b):
        stack.wait_outbox(org, 1)
    stack.settled()
    assert texts(stack, left[0]) == [("c", phone, "L: tu código")]  # still waiting, untouched
    assert texts(stack, right[0]) == [("b:c", phone, "R: tu código"), ("b:c", phone, "R: gracias")]
    assert (texts(stack, seen_a), texts(stack, seen_b)) == ([("ch1", phone, "eco: uno")],
                                                            [("ch1", phone, "eco: dos")])
    contacts = stack.rows("select org_id, phone, attributes from contacts where org_id in (:a, :b) order by org_id",
                          a=slash_a, b=slash_b)
    assert [tuple(r) for r in contacts] == [(slash_a, "q/r", {"org": "A"}), (slash_b, "r", {"org": "B"})]


def test_replay_fields_are_honoured_only_when_the_engine_signed_them(stack: Stack) -> None:
    victim_org, intruder = new_org(), new_org()
    stack.load_flow(victim_org, ASK)
    stack.load_flow(intruder, ECHO)
    entry_id = stack.send(victim_org, "5215550300", "hola")
    stack.wait_outbox(victim_org, 1)
    # The intruder claims the victim's event key: its run id, client ids and row would be the victim's.
    foreign = {**stack._entry(intruder, "5215550301", "mío", None, "ch1"), "replay_index": "0",
               "replay_key": f"{entry_id}/0"}
    stack.redis.xadd(INCOMING, foreign)
    # A message seen before, sent again with replay_index to slip past duplicate detection.
    stack.send(intruder, "5215550302", "una vez", wamid="wamid.once")
    stack.wait_outbox(intruder, 1)
    again = {**stack._entry(intruder, "5215550302", "una vez", "wamid.once", "ch1"), "replay_index": "0"}
    stack.redis.xadd(INCOMING, again)
    stack.settled()
    assert texts(stack, intruder) == [("ch1", "5215550302", "eco: una vez")]
    assert [e["error"] for e in dlq_of(stack, intruder)] == ["invalid-payload", "invalid-payload"]
    runs = stack.rows("select id, org_id, status, last_step from flow_runs where id = :id",
                      id=derive(f"{entry_id}/0", "run"))
    assert [tuple(r)[1:] for r in runs] == [(victim_org, "running", "path_default:1")]


@pytest.fixture
def refused_names(stack: Stack) -> Iterator[None]:
    """A platform rule the engine does not know: contacts named BAD… are refused by the database."""
    with stack.engine.begin() as conn:
        conn.execute(text("ALTER TABLE contacts ADD CONSTRAINT no_bad_names CHECK (name NOT LIKE 'BAD%')"))
    yield
    with stack.engine.begin() as conn:
        conn.execute(text("ALTER TABLE contacts DROP CONSTRAINT no_bad_names"))


def test_data_errors_go_to_the_dlq_at_once_and_texts_are_normalised(stack: Stack, refused_names: None) -> None:
    org = new_org()
    stack.load_flow(org, {"nodes": [], "paths": {"path_default": [
        {"type": "set_attribute", "key": "last", "value": "{{message.text}}"},
        {"type": "action", "action": "send_text", "text": "eco: {{message.text}}"}]}})
    stack.send(org, "5215550400", "hola\x00mundo")  # NUL: no PostgreSQL text or JSONB keeps it
    long_name = {**stack._entry(org, "5215550401", "largo", None, "ch1")}
    payload = json.loads(long_name["payload"])
    payload["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"] = {"name": "N" * 300}
    stack.redis.xadd(INCOMING, {**long_name, "payload": json.dumps(payload)})
    refused = json.loads(stack._entry(org, "5215550402", "me niegan", None, "ch1")["payload"])
    refused["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"] = {"name": "BAD actor"}
    stack.redis.xadd(INCOMING, {"org_id": org, "channel_id": "ch1", "payload": json.dumps(refused)})
    stack.send(org, "5215550403", "detrás")
    stack.wait_outbox(org, 3)
    stack.settled()
    assert sorted(texts(stack, org)) == [("ch1", "5215550400", "eco: holamundo"), ("ch1", "5215550401", "eco: largo"),
                                         ("ch1", "5215550403", "eco: detrás")]
    names = stack.rows("select phone, length(name), attributes from contacts where org_id = :o order by phone", o=org)
    assert [tuple(r) for r in names] == [("5215550400", None, {"last": "holamundo"}),
                                         ("5215550401", 256, {"last": "largo"}),
                                         ("5215550403", None, {"last": "detrás"})]
    dlq = dlq_of(stack, org)
    assert [(e["error"], e["retries"]) for e in dlq] == [("data-error", "0")]  # at once, not after retries
    assert "no_bad_names" in dlq[0]["error_detail"]


def test_no_phone_number_or_text_reaches_a_log_line(stack: Stack, refused_names: None) -> None:
    org, phones = new_org(), ["5219990001", "5219990002"]
    stack.load_flow(org, ECHO)
    with stack.engine.begin() as conn:  # a failure that is retried, then dead-lettered
        conn.execute(text(
            "CREATE OR REPLACE FUNCTION refuse_9990() RETURNS trigger AS $$ BEGIN "
            "IF NEW.contact LIKE '5219990%' THEN RAISE EXCEPTION 'refused by policy'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER refuse_9990 BEFORE INSERT ON flow_runs FOR EACH ROW "
            "EXECUTE FUNCTION refuse_9990()"))
    try:
        secret_texts = ["mi tarjeta 4111-1111", "calle Falsa 123"]
        for phone, said in zip(phones, secret_texts, strict=True):
            stack.send(org, phone, said)
        refused = json.loads(stack._entry(org, "5219990003", "BAD name text", None, "ch1")["payload"])
        refused["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"] = {"name": "BAD Ana Pérez"}
        stack.redis.xadd(INCOMING, {"org_id": org, "channel_id": "ch1", "payload": json.dumps(refused)})
        stack.wait_until(lambda: len(dlq_of(stack, org)) == 3, 60, "three events in the DLQ")
    finally:
        with stack.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_9990 ON flow_runs; DROP FUNCTION refuse_9990()"))
    logs = "\n".join(process.log() for process in stack.processes.values())
    assert "retry" in logs and "to the DLQ" in logs  # the failures were logged...
    for secret in [*phones, "5219990003", *secret_texts, "BAD name text", "Ana Pérez"]:
        assert secret not in logs  # ...without the data


def test_one_event_cannot_hold_redis_or_the_other_tenants(stack: Stack) -> None:
    loud, quiet = new_org(), new_org()
    stack.load_flow(loud, {"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "webhook", "data": {"t": "{{message.text}}"}} for _ in range(900)]}})
    stack.load_flow(quiet, ECHO)
    stack.redis.config_set("slowlog-log-slower-than", 50_000)  # µs: every command over 50 ms
    stack.redis.slowlog_reset()
    try:
        stack.send(loud, "5215550500", "x" * 60_000)  # 900 webhooks of 60 KB: 54 MB in one commit
        messages = [{"from": f"52155506{n:05d}", "id": f"wamid.flood{n}", "type": "text", "text": {"body": "a"}}
                    for n in range(1001)]
        flood = {"entry": [{"changes": [{"value": {"messages": messages}}]}]}
        stack.redis.xadd(INCOMING, {"org_id": loud, "channel_id": "ch1", "payload": json.dumps(flood)})
        stack.send(quiet, "5215550599", "hola")
        stack.wait_outbox(quiet, 1)
        stack.settled()
        slow = [entry for entry in stack.redis.slowlog_get(128) if entry["duration"] > 50_000]
    finally:
        stack.redis.config_set("slowlog-log-slower-than", 10_000)
    assert slow == []
    assert stack.outbox(loud) == [] and stack.stream(WEBHOOKS, loud) == []
    dlq = sorted((e["error"], e["error_detail"]) for e in dlq_of(stack, loud))
    assert [error for error, _ in dlq] == ["invalid-payload", "output-limit"]
    assert dlq[0][1] == "entry holds 1001 messages, more than the limit of 1000"
    assert dlq[1][1].startswith("path_default:899: one message caused 900 outputs (")
    runs = stack.rows("select status from flow_runs where org_id = :o", o=loud)
    assert [r.status for r in runs] == ["failed"]


def test_dlq_list_shows_control_characters_as_escapes(stack: Stack) -> None:
    org = new_org()
    stack.redis.xadd(DLQ, {"org_id": org, "error": "invalid-payload", "error_detail": "\x1b]0;owned\x07 \x9b2J",
                           "source_id": "1-0", "retries": "0"})
    env = {**stack["bridge0"].env}
    for args in (["dlq", "list"], ["dlq", "list", "--json"]):
        result = subprocess.run([str(BIN / "flow-engine"), *args], env=env, capture_output=True, text=True, timeout=60)
        line = next(line for line in result.stdout.splitlines() if org in line)
        assert "\x1b" not in line and "\x07" not in line and "\x9b" not in line
        assert ("\\x1b]0;owned\\x07 \\x9b2J" in line) if args == ["dlq", "list"] else (
            json.loads(line)["error_detail"] == "\x1b]0;owned\x07 \x9b2J")


def test_deleting_the_stream_under_a_waiting_bridge_stops_nothing(stack: Stack) -> None:
    org = new_org()
    stack.load_flow(org, ECHO)
    stack.settled()
    stack.redis.delete(INCOMING)  # the bridge is blocked in XREADGROUP: Redis answers UNBLOCKED
    stack.wait_until(lambda: stack.redis.exists(INCOMING), 20, "the bridge to create the stream again")
    stack.send(org, "5215550700", "sigo aquí")
    stack.wait_outbox(org, 1)
    assert texts(stack, org) == [("ch1", "5215550700", "eco: sigo aquí")]
    assert alive(stack)
