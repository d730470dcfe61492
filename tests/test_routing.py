"""The bridge's routing (pure): each entry read from an org's inbox or nf:incoming becomes hand-off
arguments naming where it was read from, or a DLQ entry with its reason; one bad entry never stops
the others."""

from __future__ import annotations

import json

from bridge.routing import GONE, lane_of, route
from flow_engine.adapters.keys import INBOX_PREFIX, INCOMING

SECRET = b"k" * 32
INBOX = f"{INBOX_PREFIX}acme".encode()


def message(text: str, wamid: str) -> dict[bytes, bytes]:
    body = {"text": text, "contact": {"phone": "5215550001"}, "id": wamid}
    return {b"org_id": b"acme", b"channel_id": b"ch1", b"payload": json.dumps(body).encode()}


def seen(org: str, wamid: str) -> bytes:
    return f"seen:{org}:{wamid}".encode()


def test_entries_are_routed_with_the_key_they_were_read_from_and_bad_ones_go_to_the_dlq_alone() -> None:
    entries = [
        (b"1-0", message("hola", "wamid.1"), INBOX),
        (b"2-0", None, INBOX),  # its id waited in the inbox, the entry was deleted from nf:incoming
        (b"3-0", {b"org_id": b"acme", b"payload": b"{not json"}, INBOX),
        (b"4-0", message("otra", "wamid.4"), INCOMING.encode()),  # pending from an earlier bridge
    ]
    routed = route(entries, 16, seen, SECRET)
    lane = lane_of("acme", "ch1", "5215550001", 16)
    [batch] = routed.batches
    assert batch[:3] == ["1-0", INBOX, 1] and batch[3] == lane and batch[5] == b"seen:acme:wamid.1"
    assert batch[6:9] == ["4-0", INCOMING.encode(), 1] and batch[11] == b"seen:acme:wamid.4"
    assert [(stream_id, reason, source) for stream_id, _fields, reason, source in routed.invalid] == [
        ("2-0", GONE, INBOX),
        ("3-0", "payload is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
                "(char 1)", INBOX)]
    assert routed.events == 2 and routed.per_org == {"acme": 2}
