"""A conversation through the real processes on the platform's own database (after `db upgrade`),
with a flow and a contact inserted the way the platform does, in UTC and in a session time zone
six hours off: runs, contacts and timestamps checked by SQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from flow_engine.adapters.dlq import DLQ_FIELDS
from flow_engine.adapters.keys import DLQ, INCOMING
from tests.devstack import Stack
from tests.runtime.platform import add_contact, add_flow, add_org, platform_database, run_cli, sql

# A builder-shaped flow (its trigger node left out: trigger nodes are another change).
GRAPH = {
    "name": "Bienvenida",
    "nodes": [{"id": "n1", "type": "intent", "map": {"greeting": "hello", "default": "hello"}}],
    "paths": {
        "hello": [
            {"type": "action", "action": "send_text",
             "text": "Hola {{contact.name}}, plan {{contact.attributes.plan}}"},
            {"type": "set_attribute", "key": "stage", "value": "greeted"},
            {"type": "delay", "ms": 300},
            {"type": "action", "action": "send_text", "text": "¿Tu código?"},
            {"type": "wait_for_reply", "pattern": "\\b\\d{4}\\b", "timeout_seconds": 1.5, "timeout_path": "late"},
            {"type": "set_attribute", "key": "verified", "value": True},
            {"type": "action", "action": "send_text", "text": "Recibido {{message.text}}"},
        ],
        "late": [{"type": "action", "action": "send_text", "text": "Se acabó el tiempo"}],
    },
}
SECONDS_FROM_UTC_NOW = "abs(extract(epoch from ({column} - (now() AT TIME ZONE 'UTC'))))"


@pytest.fixture(scope="module", params=["UTC", "America/Mexico_City"])
def platform(request: pytest.FixtureRequest, redis_url: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    with platform_database(request.param) as url:
        assert run_cli(url, "db", "upgrade").returncode == 0
        stack = Stack(redis_url, url, tmp_path_factory.mktemp("logs"))
        try:
            stack.start()
            yield stack, url
        finally:
            stack.stop()


def test_a_conversation_on_the_platform_schema(platform: tuple[Stack, str]) -> None:
    stack, _url = platform
    org = add_org(_url)
    flow_id = add_flow(_url, org, GRAPH)
    known = add_contact(_url, org, "5215550101", "Ana", {"plan": "gold", "score": 5})
    stack.send(org, "5215550101", "hola")
    stack.send(org, "5215550102", "buenas")  # a contact the platform does not know yet
    stack.wait_outbox(org, 4)
    stack.send(org, "5215550101", "es 4321")
    outbox = stack.wait_outbox(org, 6)
    stack.settled()
    by_contact = {phone: [e["text"] for e in outbox if e["to"] == phone] for phone in ("5215550101", "5215550102")}
    assert by_contact == {
        "5215550101": ["Hola Ana, plan gold", "¿Tu código?", "Recibido es 4321"],
        "5215550102": ["Hola , plan ", "¿Tu código?", "Se acabó el tiempo"],
    }
    runs = stack.rows(
        "SELECT flow_id, flow_version, contact, channel_id, status, last_step, context->>'intent' AS intent, "
        f"{SECONDS_FROM_UTC_NOW.format(column='created_at')} AS created_off_s, "
        f"{SECONDS_FROM_UTC_NOW.format(column='updated_at')} AS updated_off_s, updated_at >= created_at AS ordered "
        "FROM flow_runs WHERE org_id = :org ORDER BY contact", org=org)
    assert [tuple(r)[:7] for r in runs] == [
        (flow_id, 1, "5215550101", "ch1", "completed", "hello:6", "greeting"),
        (flow_id, 1, "5215550102", "ch1", "completed", "late:0", "greeting"),
    ]
    assert all(r.created_off_s < 120 and r.updated_off_s < 120 and r.ordered for r in runs), runs
    contacts = stack.rows(
        "SELECT id, wa_id, name, attributes, tags, "
        "abs(extract(epoch from (created_at - now()))) AS created_off_s "  # the engine's own timestamptz
        "FROM contacts WHERE org_id = :org ORDER BY wa_id", org=org)
    assert [(c.id, c.wa_id, c.name, c.attributes, c.tags) for c in contacts] == [
        (known, "5215550101", "Ana", {"plan": "gold", "score": 5, "stage": "greeted", "verified": True}, ["lead"]),
        (contacts[1].id, "5215550102", None, {"stage": "greeted"}, None),
    ]
    assert contacts[1].created_off_s < 120


def test_a_dead_lettered_message_published_again_is_processed_once(platform: tuple[Stack, str]) -> None:
    """The platform's runbook re-publishes a DLQ entry by XADDing its fields back to nf:incoming."""
    stack, url = platform
    org = add_org(url)
    broken = add_flow(url, org, {"nodes": [], "paths": {"path_default": [{"type": "escalate"}]}})
    stack.send(org, "5215550103", "hola", wamid="wamid.REPUBLISH1")
    entry = stack.wait_until(lambda: stack.stream(DLQ, org), 15, "the DLQ entry")[0]
    assert entry["error"] == "flow-error"
    sql(url, "UPDATE flows SET status = 'inactive' WHERE id = :id", id=broken)
    add_flow(url, org, {"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "eco {{message.text}}"}]}}, version=2)
    stack.wait_until(lambda: stack.rows("SELECT 1 FROM flows WHERE org_id = :org AND version = 2", org=org), 5, "v2")
    time.sleep(0.6)  # the workers' flow cache (FLOW_ENGINE_FLOW_CACHE_MS=500 in the stack)
    fields = {name: value for name, value in entry.items() if name not in DLQ_FIELDS}
    stack.redis.xadd(INCOMING, fields)
    assert [e["text"] for e in stack.wait_outbox(org, 1)] == ["eco hola"]
    stack.redis.xadd(INCOMING, fields)  # published twice: the second is Meta's id seen again
    stack.settled()
    assert [e["text"] for e in stack.outbox(org)] == ["eco hola"]
    assert json.loads(entry["payload"])["entry"][0]["changes"][0]["value"]["messages"][0]["id"] == "wamid.REPUBLISH1"
