"""Entries of nf:incoming -> what the bridge hands on: pure, so it is tested without Redis.

Every entry is decoded, checked and encoded here, one at a time: whatever is wrong with one entry
(bad Unicode, a NUL, odd digits, an unsigned replay, an unexpected exception) sends that entry to the
DLQ with a reason, and the others go on. Nothing that reaches the hand-off script can fail there.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from flow_engine.adapters import lanes as lane_items
from flow_engine.adapters.keys import Keys, part
from flow_engine.adapters.signing import is_replay, replay_signed, resume_signed
from flow_engine.core.inbound import Event, InvalidPayload, Message, lane_key, parse_entry

# An org with at most this many events in one read of the bridge (up to FLOW_ENGINE_READ_BATCH
# entries) is having conversations: a lane of it that gets armed is served before the busy lanes'
# next turns. More, and it is a backlog (a campaign's replies, a replayed day), which waits its turn.
CONVERSATION_EVENTS = 20
# Events per hand-off script call: a call takes about 1 ms per 500 events, so no call holds Redis
# for long however large the read; an entry's events always go in one call (atomic with its XACK).
HANDOFF_EVENTS = 500
GONE = "the entry was deleted from nf:incoming before it was handed on"


def lane_of(org_id: str, channel_id: str, contact: str, lanes: int) -> str:
    """The lane of a contact: one of its org's `lanes`, stable across processes (crc32, not Python's
    salted hash)."""
    return Keys.lane_id(org_id, zlib.crc32(f"{channel_id}\x1f{contact}".encode()) % lanes)


@dataclass
class Routed:
    # The handoff script's arguments, one list per script call: per entry its stream id, the key it
    # was read from and its event count, then each event's lane, item and seen key ("" when there is
    # no WhatsApp message id to check), or for an entry without events the reason it is ignored
    # ("receipt", "forged-resume").
    batches: list[list[str | int | bytes]] = field(default_factory=list)
    # (stream id, fields, reason, the key it was read from): entries for the DLQ
    invalid: list[tuple[str, dict[bytes, bytes], str, bytes]] = field(default_factory=list)
    events: int = 0
    forged: int = 0  # resumes without the timer loop's signature
    per_org: Counter[str] = field(default_factory=Counter)  # events handed on, by org (escaped as in lane ids)

    def conversational(self, lane: str) -> bool:
        """Whether the org of `lane` is having conversations, not working off a backlog."""
        return self.per_org[Keys.lane_org(lane)] <= CONVERSATION_EVENTS
    _open_events: int = 0  # events in the last batch

    def add(self, args: list[str | int | bytes], events: int) -> None:
        if not self.batches or (self._open_events and self._open_events + events > HANDOFF_EVENTS):
            self.batches.append([])
            self._open_events = 0
        self.batches[-1] += args
        self._open_events += events
        self.events += events


def decode_fields(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    """Stream fields as text; invalid UTF-8 is an invalid payload."""
    try:
        return {name.decode(): value.decode() for name, value in raw.items()}
    except UnicodeDecodeError as exc:
        raise InvalidPayload(f"entry is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def _entry_args(stream_id: str, source: bytes, raw_fields: Mapping[bytes, bytes], lanes: int,
                seen_arg: Callable[[str, str], bytes], secret: bytes) -> tuple[list[str | int | bytes], list[Event]]:
    """The hand-off arguments of one entry and its event count; raises InvalidPayload."""
    if b"engine_resume" in raw_fields and not resume_signed(secret, raw_fields):
        return [stream_id, source, 0, "forged-resume"], []
    replay = is_replay(raw_fields)
    if replay and not replay_signed(secret, raw_fields):
        raise InvalidPayload("replay_* fields without the engine's signature (only `flow-engine dlq replay` "
                             "may set them)")
    fields = decode_fields(raw_fields)
    events = parse_entry(stream_id, fields)
    if not events:
        return [stream_id, source, 0, "receipt"], []
    args: list[str | int | bytes] = [stream_id, source, len(events)]
    for index, event in enumerate(events):
        seen: bytes | str = ""
        if isinstance(event, Message) and event.wa_message_id and not replay:  # a replay is meant to run again
            seen = seen_arg(event.org_id, event.wa_message_id)
        item = lane_items.encode(stream_id, index, event)
        item.encode()  # raises here, for this entry alone, if anything in it cannot be sent to Redis
        args += [lane_of(*lane_key(event), lanes), item, seen]
    return args, events


def route(entries: Sequence[tuple[bytes, Mapping[bytes, bytes] | None, bytes]], lanes: int,
          seen_arg: Callable[[str, str], bytes], secret: bytes) -> Routed:
    """Route entries given as (stream id, fields or None when the entry is gone from nf:incoming, the
    key they were read from: an org's inbox or nf:incoming), in the order they are to be handed on."""
    routed = Routed()
    for raw_id, raw_fields, source in entries:
        stream_id = raw_id.decode()
        if raw_fields is None:  # deleted from nf:incoming (by hand) while its id waited in an inbox
            routed.invalid.append((stream_id, {}, GONE, source))
            continue
        try:
            args, events = _entry_args(stream_id, source, raw_fields, lanes, seen_arg, secret)
        except InvalidPayload as exc:
            routed.invalid.append((stream_id, dict(raw_fields), str(exc), source))
            continue
        except Exception as exc:  # a bug or a case nobody foresaw: this entry's problem, not the bridge's
            routed.invalid.append((stream_id, dict(raw_fields), f"unexpected {type(exc).__name__} reading the entry",
                                   source))
            continue
        if events:  # one org an entry: its org_id field (a resume's org is its timer's, one event)
            routed.per_org[part(events[0].org_id)] += len(events)
        else:
            routed.forged += args[3] == "forged-resume"
        routed.add(args, len(events))
    return routed
