"""Entries of nf:incoming -> what the bridge hands on: pure, so it is tested without Redis."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from flow_engine.adapters import lanes as lane_items
from flow_engine.core.inbound import InvalidPayload, Message, lane_key, parse_entry


def lane_of(org_id: str, channel_id: str, contact: str, lanes: int) -> int:
    """The lane of a contact: stable across processes (crc32, not Python's salted hash)."""
    return zlib.crc32(f"{org_id}\x1f{channel_id}\x1f{contact}".encode()) % lanes


@dataclass
class Routed:
    # The handoff script's arguments: per entry its stream id, its event count, then each event's
    # lane, item and seen key ("" when there is no WhatsApp message id to check).
    handoff_args: list[str | int] = field(default_factory=list)
    # (stream id, fields, reason): entries for the DLQ
    invalid: list[tuple[str, dict[bytes, bytes], str]] = field(default_factory=list)
    events: int = 0


def decode_fields(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    """Stream fields as text; invalid UTF-8 is an invalid payload."""
    try:
        return {name.decode(): value.decode() for name, value in raw.items()}
    except UnicodeDecodeError as exc:
        raise InvalidPayload(f"entry is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def route(
    entries: Sequence[tuple[bytes, Mapping[bytes, bytes]]], lanes: int, seen_key: Callable[[str, str], str]
) -> Routed:
    routed = Routed()
    for raw_id, raw_fields in entries:
        stream_id = raw_id.decode()
        try:
            fields = decode_fields(raw_fields)
            events = parse_entry(stream_id, fields)
        except InvalidPayload as exc:
            routed.invalid.append((stream_id, dict(raw_fields), str(exc)))
            continue
        replay = "replay_index" in fields  # a DLQ replay is meant to run again: no duplicate check
        routed.handoff_args += [stream_id, len(events)]
        for index, event in enumerate(events):
            seen = ""
            if isinstance(event, Message) and event.wa_message_id and not replay:
                seen = seen_key(event.org_id, event.wa_message_id)
            lane = lane_of(*lane_key(event), lanes)
            routed.handoff_args += [lane, lane_items.encode(stream_id, index, event), seen]
        routed.events += len(events)
    return routed
