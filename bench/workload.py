"""The shop demo workload of the runtime benchmarks: which messages, from whom, in which order, and
what each kind must produce. N/10 contacts, messages round-robin over them (each contact's messages
spread over the whole backlog); texts alternate between the pricing path (template + media + webhook)
and the fallback path (one text); every 10th contact says "hola" as its LAST message (greeting: a
text, a 1.5 s delay, then an attribute and a second text: a delay holds the contact's later messages,
hence last)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.interpreter import TEXTS
from flow_engine.adapters.keys import INCOMING
from flow_engine.core.whatsapp import text_message_entry

ROOT = Path(__file__).resolve().parent.parent
FLOW_FILE = ROOT / "examples" / "flows" / "shop_demo.json"
ORG = "bench"
CHANNEL = "ch1"

# Outbox entries each kind of message produces with the shop demo (greeting: one now, one after its delay).
OUTBOX_PER_KIND = {"greeting": 2, "pricing": 2, "other": 1}
WEBHOOKS_PER_KIND = {"greeting": 0, "pricing": 1, "other": 0}

Plan = list[tuple[int, str, str]]  # (contact number, kind, text) in stream order


def webhook_fields(phone: str, name: str, body: str, wamid: str) -> dict[str, str]:
    """An nf:incoming entry of ORG as the webhook-receiver writes it."""
    return text_message_entry(ORG, CHANNEL, phone, body, wamid=wamid, timestamp_s=int(time.time()), name=name)


def message_plan(n: int) -> Plan:
    """(contact number, kind, text) of the n messages, in stream order."""
    contacts = max(1, n // 10)
    plan = []
    for i in range(n):
        contact, k = i % contacts, i // contacts
        if contact % 10 == 0 and i + contacts >= n:  # this contact's last message
            kind = "greeting"
        else:
            kind = "pricing" if (k + contact) % 2 == 0 else "other"
        texts = TEXTS[kind]
        plan.append((contact, kind, texts[(k + contact) % len(texts)]))
    return plan


def expected(plan: Plan) -> tuple[dict[str, int], int, int]:
    """The plan's mix of kinds, and the outbox entries and webhook events it must produce."""
    mix = {kind: sum(1 for _, k, _ in plan if k == kind) for kind in OUTBOX_PER_KIND}
    return (mix, sum(OUTBOX_PER_KIND[kind] * count for kind, count in mix.items()),
            sum(WEBHOOKS_PER_KIND[kind] * count for kind, count in mix.items()))


def preload(client: Any, plan: Plan, phone_prefix: str, wamid_prefix: str, chunk: int = 1000) -> float:
    """XADD the plan's messages in pipelines; returns the seconds it took."""
    start = time.perf_counter()
    for offset in range(0, len(plan), chunk):
        pipe = client.pipeline(transaction=False)
        for i, (contact, _kind, body) in enumerate(plan[offset : offset + chunk], start=offset):
            phone = f"{phone_prefix}{contact:07d}"
            pipe.xadd(INCOMING, webhook_fields(phone, f"Cliente {contact}", body, f"{wamid_prefix}.{i}"))
        pipe.execute()
    return time.perf_counter() - start
