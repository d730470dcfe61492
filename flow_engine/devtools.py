"""Developer tools: write a WhatsApp text message into nf:incoming as the webhook-receiver would
(`flow-engine send`), and follow a stream (`flow-engine tail`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime

from flow_engine.adapters.dlq import printable
from flow_engine.adapters.keys import INCOMING
from flow_engine.adapters.scripts import RedisClient
from flow_engine.core.whatsapp import text_message_entry


def send_text(client: RedisClient, org: str, channel: str, phone: str, text: str, name: str = "") -> str:
    """XADD a text message from `phone` to nf:incoming; returns its stream id."""
    entry = text_message_entry(org, channel, phone, text, wamid=f"wamid.{uuid.uuid4().hex}",
                               timestamp_s=int(time.time()), name=name, source="cli", business_id=org)
    return str(client.xadd(INCOMING, entry))


def follow(client: RedisClient, stream: str, *, from_start: bool = False, count: int = 0,
           block_ms: int = 1000) -> Iterator[tuple[str, dict[str, str]]]:
    """Entries of `stream` as they come (the whole stream first with `from_start`), `count` at most
    (0: forever). Takes a client made with `connect(url)`."""
    last, seen = ("0-0" if from_start else "$"), 0
    while not count or seen < count:
        for _stream, entries in client.xread({stream: last}, block=block_ms, count=100) or []:
            for entry_id, fields in entries:
                last, seen = entry_id, seen + 1
                yield entry_id, fields
                if count and seen >= count:
                    return


def outbox_line(entry_id: str, fields: dict[str, str]) -> str:
    """An nf:outbox entry as one readable line (control characters escaped)."""
    at = datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000).strftime("%H:%M:%S.%f")[:-3]
    kind = fields.get("type", "?")
    body = fields.get(kind, "") if kind == "text" else f"[{kind}] {fields.get(kind, '')}"
    return printable(f"{at} {fields.get('org_id', '')} → {fields.get('to', '')}: {body}")
