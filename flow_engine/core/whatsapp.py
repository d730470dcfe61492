"""WhatsApp Cloud API webhook bodies as Meta sends them, and the nf:incoming entries that carry them:
what `flow-engine send`, the tests and the benchmarks write (core/inbound.py reads them). Pure: the
message id and the timestamp are the caller's."""

from __future__ import annotations

import json
from typing import Any


def text_message_body(phone: str, text: str, *, wamid: str, timestamp_s: int | str, phone_number_id: str,
                      name: str = "", business_id: str = "W", display_phone: str | None = None) -> dict[str, Any]:
    """A webhook body with one inbound text message from `phone` (its profile name when given)."""
    metadata = {"phone_number_id": phone_number_id}
    if display_phone is not None:
        metadata = {"display_phone_number": display_phone, **metadata}
    contact: dict[str, Any] = {"profile": {"name": name}, "wa_id": phone} if name else {"wa_id": phone}
    message = {"from": phone, "id": wamid, "timestamp": str(timestamp_s), "type": "text", "text": {"body": text}}
    value = {"messaging_product": "whatsapp", "metadata": metadata, "contacts": [contact], "messages": [message]}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": business_id, "changes": [{"value": value, "field": "messages"}]}]}


def text_message_entry(org_id: str, channel_id: str, phone: str, text: str, *, wamid: str, timestamp_s: int | str,
                       name: str = "", source: str = "whatsapp", business_id: str = "W",
                       ascii_json: bool = False) -> dict[str, str]:
    """The nf:incoming fields of one text message, as the webhook-receiver writes them (`ascii_json`:
    every non-ASCII character as a JSON escape, so a text may even hold a lone surrogate)."""
    body = text_message_body(phone, text, wamid=wamid, timestamp_s=timestamp_s, phone_number_id=channel_id,
                             name=name, business_id=business_id)
    return {"source": source, "org_id": org_id, "channel_id": channel_id,
            "payload": json.dumps(body, ensure_ascii=ascii_json)}
