"""Tenant isolation: two orgs, the same contact phone and channel, both mid-wait."""

from __future__ import annotations

import json

from flow_engine.adapters.keys import WEBHOOKS
from tests.devstack import Stack
from tests.runtime.conftest import graph_of, new_org


def flow_for(tag: str) -> object:
    graph = graph_of("verification_code")
    graph["paths"]["ask"][0]["text"] = f"{tag}: tu código"
    graph["paths"]["ask"][1]["timeout_seconds"] = 1
    graph["paths"]["ask"][2]["value"] = tag
    graph["paths"]["expired"][0]["text"] = f"{tag}: tiempo agotado"
    return graph


def test_two_orgs_with_the_same_contact_never_cross(stack: Stack) -> None:
    a, b = new_org(), new_org()
    flow_a, flow_b = stack.load_flow(a, flow_for("A")), stack.load_flow(b, flow_for("B"))
    phone = "5215550777"
    stack.send(a, phone, "hola")
    stack.send(b, phone, "hola")
    stack.wait_outbox(a, 1)
    stack.wait_outbox(b, 1)
    stack.send(a, phone, "123456")  # only A's contact replies; B's waits out its timeout
    stack.wait_outbox(a, 2)
    stack.wait_outbox(b, 2)
    stack.settled()
    assert [(e["org_id"], e["to"], e["channel_id"], e["text"]) for e in stack.outbox(a)] == [
        (a, phone, "ch1", "A: tu código"), (a, phone, "ch1", "¡Código recibido: 123456! Gracias.")]
    assert [(e["org_id"], e["to"], e["channel_id"], e["text"]) for e in stack.outbox(b)] == [
        (b, phone, "ch1", "B: tu código"), (b, phone, "ch1", "B: tiempo agotado")]
    assert [json.loads(e["body"])["flow_id"] for e in stack.stream(WEBHOOKS, a)] == [flow_a]
    assert stack.stream(WEBHOOKS, b) == []
    runs = stack.rows("select org_id, flow_id, contact, status, last_step from flow_runs "
                      "where org_id in (:a, :b) order by org_id", a=a, b=b)
    assert sorted(tuple(r) for r in runs) == sorted([(a, flow_a, phone, "completed", "ask:4"),
                                                    (b, flow_b, phone, "completed", "expired:0")])
    contacts = stack.rows("select org_id, phone, attributes from contacts where org_id in (:a, :b)", a=a, b=b)
    assert [tuple(r) for r in contacts] == [(a, phone, {"verified": "A"})]
