"""Hostile input through the real processes: thousands of malformed entries between good ones.
The engine never stops, answers every good message, and puts every bad entry in the DLQ with a
specific reason (or, for status receipts, ignores and counts it)."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable, Mapping

from flow_engine import ops
from flow_engine.adapters.keys import INCOMING, STATS
from flow_engine.adapters.scripts import connect
from tests.devstack import Stack
from tests.runtime.conftest import new_org

MALFORMED = int(os.environ.get("HOSTILE_ENTRIES", "5000"))
ECHO = {"nodes": [], "paths": {"path_default": [{"type": "action", "action": "send_text", "text": "ok"}]}}


def whatsapp(message: Mapping[str, object]) -> str:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": "ch1"}, "messages": [message]}}]}]})


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# kind -> (fields of a bad entry, the start of the error_detail it must get in the DLQ); None: ignored
# (counted as ignored:<IGNORED[kind]>)
BAD: dict[str, tuple[Callable[[str], dict[str, str | bytes]], str | None]] = {
    "not-json": (lambda org: {"org_id": org, "payload": "{hola"}, "payload is not valid JSON: "),
    "json-array": (lambda org: {"org_id": org, "payload": "[1, 2]"}, "payload must be a JSON object, got list"),
    "json-string": (lambda org: {"org_id": org, "payload": '"hola"'}, "payload must be a JSON object, got str"),
    "no-payload": (lambda org: {"org_id": org, "text": "hola"}, "entry has no payload field"),
    "text-not-string": (lambda org: {"org_id": org, "payload": whatsapp(
        {"from": "5215550001", "id": "w", "type": "text", "text": {"body": 5}})},
        "payload.entry[0].changes[0].value.messages[0].text.body must be a string"),
    "no-from": (lambda org: {"org_id": org, "payload": whatsapp({"id": "w", "type": "text", "text": {"body": "x"}})},
                "payload.entry[0].changes[0].value.messages[0].from must be a non-empty string"),
    "entry-not-list": (lambda org: {"org_id": org, "payload": '{"entry": {"a": 1}}'}, "payload.entry must be a list"),
    "one-mb-text": (lambda org: {"org_id": org, "payload": json.dumps(
        {"text": "a" * 1_000_000, "contact": {"phone": "5215550001"}})},
        "payload is longer than the limit of 262144 characters"),
    "nested-10000": (lambda org: {"org_id": org, "payload": deep(10_000)}, "payload is not valid JSON: "),
    "invalid-utf8": (lambda org: {"org_id": org, "payload": b'{"text": "\xff\xfe", "contact": {"phone": "1"}}'},
                     "entry is not valid UTF-8 (invalid start byte at byte"),
    # Not signed by the timer loop: ignored and counted as forged-resume, whatever it holds.
    "bad-resume": (lambda org: {"org_id": org, "engine_resume": '["later", "t", "o", "c", "p"]'}, None),
    "status-receipt": (lambda org: {"org_id": org, "payload": json.dumps({"entry": [{"changes": [{"value": {
        "statuses": [{"id": "wamid.X", "status": "delivered"}]}}]}]})}, None),
}
IGNORED = {"status-receipt": "receipt", "bad-resume": "forged-resume"}


def test_malformed_entries_between_good_ones(stack: Stack) -> None:
    org, stranger = new_org(), new_org()  # `stranger` has no flow: its contacts get the fixed reply
    stack.load_flow(org, ECHO)
    rng = random.Random(7)
    kinds = sorted(BAD)
    sent_bad: Counter[str] = Counter()
    good: list[tuple[str, str, str]] = []  # (org, contact, channel)
    ignored_before = {reason: int(stack.redis.hget(STATS, f"ignored:{reason}") or 0) for reason in IGNORED.values()}
    pipe = stack.redis.pipeline(transaction=False)
    for n in range(MALFORMED):
        kind = kinds[n % len(kinds)] if n < len(kinds) else rng.choice(kinds)
        pipe.xadd(INCOMING, BAD[kind][0](org))
        sent_bad[kind] += 1
        if n % 10 == 0:  # a good message every tenth entry: known org, unknown org, unknown channel
            target, channel = rng.choice([(org, "ch1"), (stranger, "ch1"), (org, f"channel-{n}")])
            contact = f"5215{n:07d}"
            body = {"from": contact, "id": f"wamid.{n}", "type": "text", "text": {"body": "hola"}}
            pipe.xadd(INCOMING, {"org_id": target, "channel_id": channel, "payload": whatsapp(body)})
            good.append((target, contact, channel))
        if n % 500 == 499:
            pipe.execute()
    pipe.execute()
    stack.wait_until(lambda: len(stack.outbox(org)) + len(stack.outbox(stranger)) >= len(good), 120,
                     "every good message to be answered")
    stack.settled(timeout_s=60)
    answered = sorted((e["org_id"], e["to"], e["channel_id"]) for e in stack.outbox(org) + stack.outbox(stranger))
    assert answered == sorted(good)
    assert {e["text"] for e in stack.outbox(stranger)} == {"¡Hola! ¿En qué podemos ayudarte?"}
    raw = connect(stack["bridge0"].env["REDIS_URL"], decode=False)
    dlq = [fields for _id, fields in ops.dlq_entries(raw) if fields.get("org_id") == org]
    assert {e["error"] for e in dlq} == {"invalid-payload"}
    got: Counter[str] = Counter()
    for entry in dlq:
        matches = [k for k in kinds if BAD[k][1] is not None and entry["error_detail"].startswith(str(BAD[k][1]))]
        assert matches, entry["error_detail"]
        got[matches[0]] += 1
    expected = {k: n for k, n in sent_bad.items() if BAD[k][1] is not None}
    expected["not-json"] += expected.pop("nested-10000")  # both are "not valid JSON", with their own reason
    got_merged = dict(got)
    got_merged["not-json"] = got_merged.get("not-json", 0) + got_merged.pop("nested-10000", 0)
    assert got_merged == expected
    for kind, reason in IGNORED.items():
        assert int(stack.redis.hget(STATS, f"ignored:{reason}") or 0) - ignored_before[reason] == sent_bad[kind]
    assert all(p.proc is not None and p.proc.poll() is None and p.starts == 1 for p in stack.processes.values())
    print("hostile:", json.dumps({"malformed": MALFORMED, "good": len(good), "answered": len(answered),
                                  "dead_lettered": len(dlq), "ignored": sum(sent_bad[kind] for kind in IGNORED)}))
