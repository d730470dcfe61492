"""Stream entries of nf:incoming -> events (SPEC §3). Pure: fields in, events or InvalidPayload out."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from flow_engine.core import jsontext
from flow_engine.core.errors import InvalidPayload as InvalidPayload  # raised here; importable from here
from flow_engine.core.frozen import quick_init

MEDIA_TYPES = ("image", "video", "document", "audio", "sticker")
MAX_ORG_CHARS = 128  # org_id and channel_id: the database columns' size
MAX_CONTACT_CHARS = 64  # WhatsApp ids are at most 20 digits
MAX_PAYLOAD_CHARS = 256 * 1024  # a webhook body of several messages is a few KB
MAX_TEXT_CHARS = 64 * 1024  # WhatsApp caps a text at 4,096
MAX_NAME_CHARS = 256  # contacts.name; a longer WhatsApp profile name is cut, not refused
MAX_EVENTS_PER_ENTRY = 1000  # Meta sends a handful per body; thousands are an attack on the other tenants
MAX_ID_CHARS = 256  # WhatsApp message ids and reply ids (kept in Redis keys and outputs, never in a column)

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_REPLAY_INDEX = re.compile("[0-9]{1,6}")  # ASCII digits only: "²" and "٠" are digits to str.isdigit()


@quick_init
@dataclass(frozen=True)
class Message:
    """A contact's inbound message."""

    key: str  # unique per event: "<stream id>/<index in the webhook body>"
    org_id: str
    channel_id: str
    contact: str
    text: str
    name: str | None = None  # WhatsApp profile name
    wa_message_id: str | None = None
    reply_id: str | None = None  # id of the button / list row chosen
    kind: str = "text"


@quick_init
@dataclass(frozen=True)
class Resume:
    """A timer coming due: a delay ends or a reply wait times out. Never a contact's reply."""

    key: str  # "timer:<token>": stable however often the timer entry is delivered
    org_id: str
    channel_id: str
    contact: str
    token: str
    reason: Literal["delay", "timeout", "expire", "handoff"]


@quick_init
@dataclass(frozen=True)
class Release:
    """A control entry (`control=release`): the contact is no longer with an agent (SPEC §5.3). It
    travels the contact's lane like a message, so a release and a message racing are decided by
    stream order."""

    key: str  # "<stream id>/0"
    org_id: str
    channel_id: str
    contact: str


Event = Message | Resume | Release
CONTROLS = ("release",)  # the values of an entry's `control` field


def lane_key(event: Event) -> tuple[str, str, str]:
    """Who an event belongs to: events with the same key are processed one at a time, in order."""
    return (event.org_id, event.channel_id, event.contact)


def _loads_object(raw: str | bytes, what: str) -> dict[str, Any]:
    try:
        value = jsontext.parse(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise InvalidPayload(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidPayload(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _string(value: Any, where: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # phone numbers sometimes arrive as numbers
    if not isinstance(value, str) or (required and not value):
        raise InvalidPayload(f"{where} must be a non-empty string")
    return value


def _message_text(message: Mapping[str, Any], where: str) -> tuple[str, str | None]:
    """(text, reply id) of one WhatsApp message, by its type."""
    kind = message.get("type", "text")
    body = message.get(kind) if isinstance(kind, str) else None
    if kind == "text":
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            raise InvalidPayload(f"{where}.text.body must be a string")
        return body["body"], None
    if kind == "interactive" and isinstance(body, dict):
        for reply_kind in ("button_reply", "list_reply"):
            reply = body.get(reply_kind)
            if isinstance(reply, dict):
                reply_id = reply.get("id")
                return str(reply.get("title") or ""), str(reply_id) if reply_id is not None else None
        return "", None
    if kind == "button" and isinstance(body, dict):
        payload = body.get("payload")
        return str(body.get("text") or ""), str(payload) if payload is not None else None
    if kind in MEDIA_TYPES and isinstance(body, dict):
        caption = body.get("caption")
        return caption if isinstance(caption, str) else "", None
    return "", None  # location, contacts, reaction...: no text, still an event


def _whatsapp_events(stream_id: str, body: Mapping[str, Any], org_id: str, channel_id: str) -> list[Event]:
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise InvalidPayload("payload.entry must be a list")
    events: list[Event] = []
    for e, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            raise InvalidPayload(f"payload.entry[{e}].changes must be a list")
        for c, change in enumerate(changes):
            where = f"payload.entry[{e}].changes[{c}].value"
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                raise InvalidPayload(f"{where} must be an object")
            messages = value.get("messages", [])
            contacts = value.get("contacts", [])
            if not isinstance(messages, list) or not isinstance(contacts, list):
                raise InvalidPayload(f"{where}.messages and .contacts must be lists")
            profiles = {
                str(item.get("wa_id")): item for item in contacts if isinstance(item, dict) and item.get("wa_id")
            }
            metadata = value.get("metadata")
            channel = channel_id or (
                str(metadata.get("phone_number_id") or "") if isinstance(metadata, dict) else ""
            )
            for m, message in enumerate(messages):
                at = f"{where}.messages[{m}]"
                if not isinstance(message, dict):
                    raise InvalidPayload(f"{at} must be an object")
                sender = _string(message.get("from"), f"{at}.from")
                profile = profiles.get(sender) or (next(iter(profiles.values())) if len(profiles) == 1 else {})
                contact = str(profile.get("wa_id") or sender)
                name = profile.get("profile", {}).get("name") if isinstance(profile.get("profile"), dict) else None
                text, reply_id = _message_text(message, at)
                events.append(_message(f"{stream_id}/{len(events)}", org_id, channel, contact, text, name,
                                       message.get("id"), reply_id=reply_id, kind=str(message.get("type", "text"))))
    return events


def _message(key: str, org_id: str, channel_id: str, contact: str, text: str, name: Any, wa_id: Any,
             reply_id: str | None = None, kind: str = "text") -> Message:
    """A Message; a profile name that is not a string is none, a message id is kept as text."""
    return Message(key, org_id, channel_id, contact, text, name if isinstance(name, str) else None,
                   str(wa_id) if wa_id else None, reply_id, kind)


def _simple_event(stream_id: str, body: Mapping[str, Any], org_id: str, channel_id: str) -> list[Event]:
    text = body.get("text")
    if not isinstance(text, str):
        raise InvalidPayload("payload.text must be a string")
    contact = body.get("contact")
    if not isinstance(contact, dict):
        raise InvalidPayload("payload.contact must be an object with a phone")
    phone = _string(contact.get("phone"), "payload.contact.phone")
    return [_message(f"{stream_id}/0", org_id, channel_id, phone, text, contact.get("name"), body.get("id"))]


def _resume_event(raw: str, org_id: str, channel_id: str) -> Event:
    """A timer published by the timer loop: [reason, token, org_id, channel_id, contact]."""
    try:
        timer = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidPayload("engine_resume is not valid JSON") from None
    if not (isinstance(timer, list) and len(timer) == 5 and all(isinstance(part, str) for part in timer)):
        raise InvalidPayload("engine_resume must be [reason, token, org_id, channel_id, contact]")
    reason, token, timer_org, timer_channel, contact = timer
    if reason not in ("delay", "timeout", "expire", "handoff"):
        raise InvalidPayload('engine_resume reason must be "delay", "timeout", "expire" or "handoff", '
                             f"got {json.dumps(reason)}")
    if not token or not contact:
        raise InvalidPayload("engine_resume needs a token and a contact")
    return Resume(
        key=f"timer:{token}",
        org_id=timer_org or org_id,
        channel_id=timer_channel or channel_id,
        contact=contact,
        token=token,
        reason="delay" if reason == "delay" else "expire" if reason == "expire" else
        "handoff" if reason == "handoff" else "timeout",
    )


def _control_event(stream_id: str, fields: Mapping[str, str], org_id: str, channel_id: str) -> Event:
    """A control entry: `control` (release), `org_id`, `channel_id`, `contact` (SPEC §5.3)."""
    control = fields["control"]
    if control not in CONTROLS:
        raise InvalidPayload(f'control must be "release", got {json.dumps(control, ensure_ascii=False)}')
    if not org_id:
        raise InvalidPayload("a control entry needs org_id")
    contact = _string(fields.get("contact"), "contact")
    return Release(key=f"{stream_id}/0", org_id=org_id, channel_id=channel_id, contact=contact)


def clean_text(text: str) -> str:
    """A text as the engine keeps it: NUL removed (no database stores it), a lone surrogate (a JSON
    "\\ud800" escape) replaced by U+FFFD (no UTF-8 encodes it). Texts are normalised, not refused:
    the contact's message is still answered."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


def _id(value: str, name: str, limit: int) -> str:
    """An id as the engine keys things by it: refused (never altered, so it never aliases another)
    when longer than `limit` or holding a control character or a lone surrogate."""
    if len(value) > limit:
        raise InvalidPayload(f"{name} is longer than {limit} characters")
    if not value.isprintable() and _CONTROL.search(value):  # isprintable: the fast answer for real ids
        raise InvalidPayload(f"{name} holds a control character or a lone surrogate")
    return value


def _checked(event: Event) -> Event:
    """One event with every value checked (ids) or normalised (texts): after this, nothing about it
    can fail to encode, to fit its column or to key the right contact."""
    if _clean(event):
        return event  # the common case, decided with a few whole-string tests (the bridge's hot path)
    _id(event.org_id, "org_id", MAX_ORG_CHARS)
    _id(event.channel_id, "channel_id", MAX_ORG_CHARS)
    _id(event.contact, "contact", MAX_CONTACT_CHARS)
    if isinstance(event, Resume):
        _id(event.token, "engine_resume token", MAX_ID_CHARS)
        return event
    if isinstance(event, Release):
        return event
    if len(event.text) > MAX_TEXT_CHARS:
        raise InvalidPayload(f"message text is longer than the limit of {MAX_TEXT_CHARS} characters")
    if event.wa_message_id is not None:
        _id(event.wa_message_id, "message id", MAX_ID_CHARS)
    text, kind = clean_text(event.text), clean_text(event.kind)[:32]
    name = None if event.name is None else clean_text(event.name)[:MAX_NAME_CHARS]
    reply_id = None if event.reply_id is None else clean_text(event.reply_id)[:MAX_ID_CHARS]
    if text is event.text and kind is event.kind and name is event.name and reply_id is event.reply_id:
        return event  # nothing to normalise (slicing a short string returns it)
    return replace(event, text=text, kind=kind, name=name, reply_id=reply_id)


def _clean(event: Event) -> bool:
    """Whether `event` passes every check of `_checked` unchanged (False: look closer, one by one)."""
    if len(event.org_id) > MAX_ORG_CHARS or len(event.channel_id) > MAX_ORG_CHARS or \
            len(event.contact) > MAX_CONTACT_CHARS:
        return False
    if isinstance(event, Resume):
        return len(event.token) <= MAX_ID_CHARS and f"{event.org_id}{event.channel_id}{event.contact}{event.token}" \
            .isprintable()
    if isinstance(event, Release):
        return f"{event.org_id}{event.channel_id}{event.contact}".isprintable()
    name, wa_id, reply_id = event.name or "", event.wa_message_id or "", event.reply_id or ""
    if len(event.text) > MAX_TEXT_CHARS or len(event.kind) > 32 or len(name) > MAX_NAME_CHARS or \
            len(wa_id) > MAX_ID_CHARS or len(reply_id) > MAX_ID_CHARS:
        return False
    if not f"{event.org_id}{event.channel_id}{event.contact}{wa_id}".isprintable():
        return False
    texts = f"{event.text}{event.kind}{name}{reply_id}"
    return "\x00" not in texts and (texts.isascii() or not _SURROGATE.search(texts))


def parse_entry(stream_id: str, fields: Mapping[str, str]) -> list[Event]:
    """The events of one nf:incoming entry, in order, each checked (`_checked`). Status-only bodies
    give none.

    A DLQ replay carries `replay_index` and `replay_key`: only that event of the body, under its
    original key, so it reproduces the ids of its first attempt. Only replays the engine signed may
    carry them: the caller checks the signature (adapters/signing.py) before this.
    """
    events = _events(stream_id, fields)
    if len(events) > MAX_EVENTS_PER_ENTRY:
        raise InvalidPayload(f"entry holds {len(events)} messages, more than the limit of {MAX_EVENTS_PER_ENTRY}")
    events = [_checked(event) for event in events]
    if "replay_index" not in fields:
        return events
    index = fields["replay_index"]
    if not _REPLAY_INDEX.fullmatch(index) or int(index) >= len(events):
        raise InvalidPayload(f"replay_index {index!r} does not name an event of this entry")
    event = events[int(index)]
    replay_key = fields.get("replay_key") or event.key
    if len(replay_key) > MAX_ID_CHARS or _CONTROL.search(replay_key):
        raise InvalidPayload("replay_key is not an event key")
    return [replace(event, key=replay_key)]


def _events(stream_id: str, fields: Mapping[str, str]) -> list[Event]:
    org_id = fields.get("org_id") or ""
    channel_id = fields.get("channel_id") or ""
    if not isinstance(org_id, str) or not isinstance(channel_id, str):
        raise InvalidPayload("org_id and channel_id must be strings")
    if "engine_resume" in fields:
        return [_resume_event(fields["engine_resume"], org_id, channel_id)]
    if "control" in fields:
        return [_control_event(stream_id, fields, org_id, channel_id)]
    if "payload" not in fields:
        raise InvalidPayload("entry has no payload field")
    if len(fields["payload"]) > MAX_PAYLOAD_CHARS:
        raise InvalidPayload(f"payload is longer than the limit of {MAX_PAYLOAD_CHARS} characters")
    body = _loads_object(fields["payload"], "payload")
    if "entry" in body:
        return _whatsapp_events(stream_id, body, org_id, channel_id)
    if "text" in body or "contact" in body:
        return _simple_event(stream_id, body, org_id, channel_id)
    raise InvalidPayload("payload is neither a WhatsApp webhook body (entry[]) nor {text, contact}")
