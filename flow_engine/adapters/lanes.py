"""What a lane holds: one event, already parsed by the bridge, compact, with where it came from.

The original entry stays in nf:incoming (the engine acknowledges entries, it does not delete them),
so the rare event that goes to the DLQ is looked up there instead of being carried along."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from flow_engine.adapters.keys import INCOMING
from flow_engine.adapters.scripts import RedisClient
from flow_engine.core.frozen import quick_init
from flow_engine.core.inbound import Event, Message, Release, Resume
from flow_engine.core.jsontext import compact, parse


@quick_init
@dataclass(frozen=True)
class Item:
    stream_id: str  # the nf:incoming entry
    index: int  # which event of that entry
    event: Event


def encode(stream_id: str, index: int, event: Event) -> str:
    if isinstance(event, Message):
        body: list[object] = ["m", event.key, event.org_id, event.channel_id, event.contact, event.text, event.name,
                              event.wa_message_id, event.reply_id, event.kind]
    elif isinstance(event, Release):
        body = ["c", event.key, event.org_id, event.channel_id, event.contact, "release"]
    else:
        body = ["r", event.key, event.org_id, event.channel_id, event.contact, event.token, event.reason]
    return compact([stream_id, index, body])


def decode(raw: str) -> Item:
    stream_id, index, body = parse(raw)
    if body[0] == "m":
        _, key, org, channel, contact, text, name, wa_id, reply_id, kind = body
        return Item(stream_id, index, Message(key, org, channel, contact, text, name, wa_id, reply_id, kind))
    if body[0] == "c":
        _, key, org, channel, contact, _control = body
        return Item(stream_id, index, Release(key, org, channel, contact))
    _, key, org, channel, contact, token, reason = body
    return Item(stream_id, index, Resume(key, org, channel, contact, token, reason))


def source_fields(client: RedisClient, item: Item) -> Mapping[str, str]:
    """The original nf:incoming entry of `item`, for its DLQ entry. When the stream was trimmed
    meanwhile (a message held for hours during a delay), a stand-in that replays the same message:
    the simple payload shape with its text, contact, name and WhatsApp id."""
    entries = client.xrange(INCOMING, min=item.stream_id, max=item.stream_id)
    if entries:
        return dict(entries[0][1])
    event = item.event
    fields = {"org_id": event.org_id, "channel_id": event.channel_id, "trimmed": "original entry no longer in stream"}
    if isinstance(event, Message):
        contact = {"phone": event.contact, **({"name": event.name} if event.name else {})}
        payload: dict[str, object] = {"text": event.text, "contact": contact}
        if event.wa_message_id:
            payload["id"] = event.wa_message_id
        fields["payload"] = json.dumps(payload, ensure_ascii=False)
    elif isinstance(event, Release):
        fields.update(control="release", contact=event.contact)
    return fields
