"""parse_entry (SPEC §3, nf:incoming): WhatsApp Cloud API bodies, the simple shape, engine resumes and
the exact reasons given for invalid entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flow_engine.core.inbound import InvalidPayload, Message, Resume, lane_key, parse_entry
from flow_engine.core.outcome import Timer

PAYLOADS = Path(__file__).resolve().parent / "fixtures" / "payloads"
STREAM_ID = "1764072000000-0"
ANA = "5215512345678"
LUIS = "5215587654321"
VALUE = "payload.entry[0].changes[0].value"


def fixture_text(name: str) -> str:
    return (PAYLOADS / f"{name}.json").read_text(encoding="utf-8")


def fields_for(payload: str | dict[str, Any], **extra: str) -> dict[str, str]:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    return {"source": "webhook", "org_id": "acme", "channel_id": "", "payload": raw, **extra}


def wa_body(
    messages: list[Any],
    contacts: list[Any] | None = None,
    metadata: Any = None,
    statuses: list[Any] | None = None,
) -> dict[str, Any]:
    """A WhatsApp Cloud API webhook body with one entry and one change."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": metadata if metadata is not None else {"display_phone_number": "15550001111",
                                                           "phone_number_id": "PNID_1"},
        "messages": messages,
    }
    if contacts is not None:
        value["contacts"] = contacts
    if statuses is not None:
        value["statuses"] = statuses
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "WABA_ID", "changes": [{"field": "messages", "value": value}]}]}


def messages(stream_id: str, fields: dict[str, str]) -> list[Message]:
    """parse_entry, checking every event is a contact's Message."""
    events = parse_entry(stream_id, fields)
    assert all(isinstance(event, Message) for event in events)
    return [event for event in events if isinstance(event, Message)]


def only_message(fields: dict[str, str]) -> Message:
    events = messages(STREAM_ID, fields)
    assert len(events) == 1
    return events[0]


# --- the sample payloads ------------------------------------------------------------------------


def test_text_message_fixture() -> None:
    events = parse_entry(STREAM_ID, fields_for(fixture_text("text_message")))
    assert events == [
        Message(
            key=f"{STREAM_ID}/0",
            org_id="acme",
            channel_id="PNID_1",
            contact=ANA,
            text="Hola, ¿qué precio tiene el plan?",
            name="Ana",
            wa_message_id="wamid.HBgNNTIxNTUxMjM0NTY3OBUCABIYFjNFQjBDMDk0",
            reply_id=None,
            kind="text",
        )
    ]


def test_interactive_button_reply_fixture() -> None:
    events = parse_entry(STREAM_ID, fields_for(fixture_text("interactive_reply")))
    assert events == [
        Message(
            key=f"{STREAM_ID}/0",
            org_id="acme",
            channel_id="PNID_1",
            contact=LUIS,
            text="Ver precios",
            name="Luis",
            wa_message_id="wamid.INTERACTIVE1",
            reply_id="btn_prices",
            kind="interactive",
        )
    ]


def test_simple_shape_fixture() -> None:
    events = parse_entry(STREAM_ID, fields_for(fixture_text("simple"), channel_id="ch-1"))
    assert events == [
        Message(
            key=f"{STREAM_ID}/0",
            org_id="acme",
            channel_id="ch-1",
            contact="5215500000001",
            text="buenas tardes",
            name=None,
            wa_message_id=None,
            reply_id=None,
            kind="text",
        )
    ]


def test_status_receipt_fixture_gives_no_event() -> None:
    assert parse_entry(STREAM_ID, fields_for(fixture_text("status_receipt"))) == []


def test_two_contacts_batch_fixture_gives_three_events_in_order() -> None:
    events = messages(STREAM_ID, fields_for(fixture_text("two_contacts_batch")))
    assert [(e.key, e.contact, e.name, e.text, e.wa_message_id, e.kind) for e in events] == [
        (f"{STREAM_ID}/0", ANA, "Ana", "hola", "wamid.BATCH1", "text"),
        (f"{STREAM_ID}/1", LUIS, "Luis", "precio de esto?", "wamid.BATCH2", "image"),
        (f"{STREAM_ID}/2", ANA, "Ana", "necesito ayuda", "wamid.BATCH3", "text"),
    ]
    assert {e.channel_id for e in events} == {"PNID_1"}
    assert {e.org_id for e in events} == {"acme"}
    assert [lane_key(e) for e in events] == [
        ("acme", "PNID_1", ANA),
        ("acme", "PNID_1", LUIS),
        ("acme", "PNID_1", ANA),
    ]


# --- text of each message type ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "text", "reply_id", "kind"),
    [
        pytest.param({"type": "text", "text": {"body": "hola"}}, "hola", None, "text", id="text"),
        pytest.param({"text": {"body": "sin tipo"}}, "sin tipo", None, "text", id="text-without-type"),
        pytest.param({"type": "text", "text": {"body": ""}}, "", None, "text", id="text-empty-body"),
        pytest.param(
            {"type": "interactive",
             "interactive": {"type": "button_reply", "button_reply": {"id": "btn_yes", "title": "Sí"}}},
            "Sí", "btn_yes", "interactive", id="interactive-button-reply",
        ),
        pytest.param(
            {"type": "interactive",
             "interactive": {"type": "list_reply",
                             "list_reply": {"id": "row_pro", "title": "Plan Pro", "description": "El completo"}}},
            "Plan Pro", "row_pro", "interactive", id="interactive-list-reply",
        ),
        pytest.param(
            {"type": "button", "button": {"text": "Confirmar cita", "payload": "CONFIRM_YES"}},
            "Confirmar cita", "CONFIRM_YES", "button", id="button-template-reply",
        ),
        pytest.param(
            {"type": "image", "image": {"id": "MEDIA1", "mime_type": "image/jpeg", "caption": "mi recibo"}},
            "mi recibo", None, "image", id="image-with-caption",
        ),
        pytest.param(
            {"type": "image", "image": {"id": "MEDIA2", "mime_type": "image/jpeg"}},
            "", None, "image", id="image-without-caption",
        ),
        pytest.param(
            {"type": "document", "document": {"id": "MEDIA3", "filename": "a.pdf", "caption": "contrato"}},
            "contrato", None, "document", id="document-with-caption",
        ),
        pytest.param({"type": "audio", "audio": {"id": "MEDIA4", "voice": True}}, "", None, "audio", id="audio"),
        pytest.param({"type": "video", "video": {"id": "MEDIA5"}}, "", None, "video", id="video-without-caption"),
        pytest.param({"type": "sticker", "sticker": {"id": "MEDIA6"}}, "", None, "sticker", id="sticker"),
        pytest.param(
            {"type": "location", "location": {"latitude": 19.43, "longitude": -99.13}},
            "", None, "location", id="location",
        ),
    ],
)
def test_message_text_by_type(message: dict[str, Any], text: str, reply_id: str | None, kind: str) -> None:
    message = {"from": ANA, "id": "wamid.X1", "timestamp": "1764072000", **message}
    event = only_message(fields_for(wa_body([message], [{"profile": {"name": "Ana"}, "wa_id": ANA}])))
    assert (event.text, event.reply_id, event.kind) == (text, reply_id, kind)
    assert (event.contact, event.name, event.wa_message_id, event.key) == (ANA, "Ana", "wamid.X1", f"{STREAM_ID}/0")


# --- contact, channel and keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel_field", "metadata", "channel"),
    [
        pytest.param("ch-explicit", None, "ch-explicit", id="field-wins-over-metadata"),
        pytest.param("", None, "PNID_1", id="empty-field-uses-metadata"),
        pytest.param(None, None, "PNID_1", id="missing-field-uses-metadata"),
        pytest.param("", {"display_phone_number": "15550001111", "phone_number_id": "PNID_2"}, "PNID_2",
                     id="metadata-phone-number-id"),
        pytest.param("", {"display_phone_number": "15550001111"}, "", id="neither"),
    ],
)
def test_channel_id_from_field_else_metadata(channel_field: str | None, metadata: Any, channel: str) -> None:
    body = wa_body([{"from": ANA, "type": "text", "text": {"body": "hola"}}], metadata=metadata)
    fields = fields_for(body)
    del fields["channel_id"]
    if channel_field is not None:
        fields["channel_id"] = channel_field
    assert only_message(fields).channel_id == channel


def test_simple_shape_keeps_name_and_id() -> None:
    payload = {"text": "hola", "contact": {"phone": "5215500000002", "name": "Eva"}, "id": "ext-77"}
    event = only_message(fields_for(payload, channel_id="ch-2"))
    assert (event.contact, event.name, event.wa_message_id, event.text, event.channel_id) == (
        "5215500000002", "Eva", "ext-77", "hola", "ch-2",
    )


def test_contact_is_wa_id_when_present() -> None:
    """Mexican numbers: `from` may carry the 521 prefix while contacts[].wa_id does not."""
    body = wa_body(
        [{"from": "5215512345678", "id": "wamid.MX", "type": "text", "text": {"body": "hola"}}],
        [{"profile": {"name": "Ana"}, "wa_id": "525512345678"}],
    )
    event = only_message(fields_for(body))
    assert (event.contact, event.name) == ("525512345678", "Ana")


def test_contact_is_from_without_contacts() -> None:
    body = wa_body([{"from": ANA, "id": "wamid.NC", "type": "text", "text": {"body": "hola"}}])
    event = only_message(fields_for(body))
    assert (event.contact, event.name) == (ANA, None)


def test_numeric_from_is_accepted_as_text() -> None:
    body = wa_body([{"from": 5215512345678, "type": "text", "text": {"body": "hola"}}])
    assert only_message(fields_for(body)).contact == "5215512345678"


def test_statuses_next_to_messages_are_ignored() -> None:
    body = wa_body(
        [{"from": ANA, "id": "wamid.M1", "type": "text", "text": {"body": "hola"}}],
        statuses=[{"id": "wamid.OUT1", "status": "read", "recipient_id": ANA}],
    )
    assert [e.text for e in messages(STREAM_ID, fields_for(body))] == ["hola"]


def test_event_keys_are_unique_across_entries_and_changes() -> None:
    def change(body: str, wamid: str) -> dict[str, Any]:
        return {"field": "messages", "value": {
            "metadata": {"phone_number_id": "PNID_1"},
            "messages": [{"from": ANA, "id": wamid, "type": "text", "text": {"body": body}}],
        }}

    payload = {"entry": [
        {"id": "W1", "changes": [change("uno", "wamid.1"), change("dos", "wamid.2")]},
        {"id": "W2", "changes": [change("tres", "wamid.3")]},
    ]}
    events = messages("1764072000000-7", fields_for(payload))
    assert [(e.key, e.text) for e in events] == [
        ("1764072000000-7/0", "uno"),
        ("1764072000000-7/1", "dos"),
        ("1764072000000-7/2", "tres"),
    ]


def test_same_body_in_two_stream_entries_gives_distinct_keys_and_same_wa_ids() -> None:
    fields = fields_for(fixture_text("two_contacts_batch"))
    first, second = messages("100-0", fields), messages("100-1", fields)
    assert [e.key for e in first] == ["100-0/0", "100-0/1", "100-0/2"]
    assert [e.key for e in second] == ["100-1/0", "100-1/1", "100-1/2"]
    assert [e.wa_message_id for e in first] == [e.wa_message_id for e in second]  # for the 48 h dedup


# --- engine resumes -----------------------------------------------------------------------------


def resume_json(reason: Any = "delay", token: Any = "tok123", org: Any = "acme", channel: Any = "ch-1",
                contact: Any = ANA) -> str:
    return json.dumps([reason, token, org, channel, contact])


@pytest.mark.parametrize("reason", ["delay", "timeout"])
def test_engine_resume_is_a_resume_event(reason: str) -> None:
    fields = {"source": "engine", "org_id": "acme", "channel_id": "ch-1", "engine_resume": resume_json(reason)}
    assert parse_entry(STREAM_ID, fields) == [
        Resume(key="timer:tok123", org_id="acme", channel_id="ch-1", contact=ANA, token="tok123",
               reason=reason)  # type: ignore[arg-type]
    ]


def test_engine_resume_is_never_a_message_even_with_a_payload() -> None:
    fields = fields_for(fixture_text("text_message"), engine_resume=resume_json("timeout", "tok1"))
    events = parse_entry(STREAM_ID, fields)
    assert len(events) == 1
    assert isinstance(events[0], Resume)
    assert not isinstance(events[0], Message)
    assert (events[0].key, events[0].contact) == ("timer:tok1", ANA)


def test_engine_resume_key_is_stable_across_redeliveries() -> None:
    fields = {"org_id": "acme", "channel_id": "c", "engine_resume": resume_json("delay", "abc")}
    assert parse_entry("1-0", fields)[0].key == parse_entry("99-5", fields)[0].key == "timer:abc"


def test_engine_resume_org_and_channel_in_the_timer_win() -> None:
    fields = {"org_id": "other", "channel_id": "ch-field", "engine_resume": resume_json(channel="ch-resume")}
    assert (parse_entry(STREAM_ID, fields)[0].org_id, parse_entry(STREAM_ID, fields)[0].channel_id) == (
        "acme", "ch-resume")


def test_timer_resume_fields_round_trip() -> None:
    timer = Timer(token="f" * 32, due_ms=1_764_072_030_000, org_id="acme", channel_id="PNID_1", contact=ANA,
                  run_id="r" * 32, reason="timeout")
    assert parse_entry("1764072030001-0", timer.resume_fields()) == [timer.resume()] == [
        Resume(key=f"timer:{'f' * 32}", org_id="acme", channel_id="PNID_1", contact=ANA, token="f" * 32,
               reason="timeout")
    ]


# --- invalid entries ----------------------------------------------------------------------------

TEXT_MESSAGE = {"from": ANA, "id": "wamid.1", "type": "text", "text": {"body": "hola"}}
AT = f"{VALUE}.messages[0]"


def resume_entry(raw: str) -> dict[str, str]:
    return {"org_id": "acme", "engine_resume": raw}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        pytest.param({"org_id": "acme", "payload": "hola, no soy JSON"},
                     "payload is not valid JSON: Expecting value: line 1 column 1 (char 0)", id="non-json"),
        pytest.param({"org_id": "acme", "payload": ""},
                     "payload is not valid JSON: Expecting value: line 1 column 1 (char 0)", id="empty-payload"),
        pytest.param({"org_id": "acme", "payload": '{"text": "hola"'},
                     "payload is not valid JSON: Expecting ',' delimiter: line 1 column 16 (char 15)",
                     id="truncated-json"),
        pytest.param({"org_id": "acme", "payload": '[{"text": "hola"}]'},
                     "payload must be a JSON object, got list", id="json-array"),
        pytest.param({"org_id": "acme", "payload": '"hola"'},
                     "payload must be a JSON object, got str", id="json-string"),
        pytest.param({"org_id": "acme", "payload": "null"},
                     "payload must be a JSON object, got NoneType", id="json-null"),
        pytest.param({"org_id": "acme", "channel_id": "c"}, "entry has no payload field", id="missing-payload"),
        pytest.param({}, "entry has no payload field", id="empty-entry"),
        pytest.param(fields_for({"entry": {"changes": []}}), "payload.entry must be a list", id="entry-not-list"),
        pytest.param(fields_for({"entry": None}), "payload.entry must be a list", id="entry-null"),
        pytest.param(fields_for({"entry": [{"changes": "x"}]}), "payload.entry[0].changes must be a list",
                     id="changes-not-list"),
        pytest.param(fields_for({"entry": ["x"]}), "payload.entry[0].changes must be a list",
                     id="entry-item-not-object"),
        pytest.param(fields_for({"entry": [{"changes": [{"value": []}]}]}), f"{VALUE} must be an object",
                     id="value-not-object"),
        pytest.param(fields_for({"entry": [{"changes": [{"value": {"messages": {}}}]}]}),
                     f"{VALUE}.messages and .contacts must be lists", id="messages-not-list"),
        pytest.param(fields_for(wa_body(["hola"])), f"{AT} must be an object", id="message-not-object"),
        pytest.param(fields_for(wa_body([{**TEXT_MESSAGE, "text": {"body": 42}}])), f"{AT}.text.body must be a string",
                     id="text-body-number"),
        pytest.param(fields_for(wa_body([{**TEXT_MESSAGE, "text": {}}])), f"{AT}.text.body must be a string",
                     id="text-body-missing"),
        pytest.param(fields_for(wa_body([{**TEXT_MESSAGE, "text": "hola"}])), f"{AT}.text.body must be a string",
                     id="text-not-object"),
        pytest.param(fields_for(wa_body([{k: v for k, v in TEXT_MESSAGE.items() if k != "from"}])),
                     f"{AT}.from must be a non-empty string", id="missing-from"),
        pytest.param(fields_for(wa_body([{**TEXT_MESSAGE, "from": ""}])), f"{AT}.from must be a non-empty string",
                     id="empty-from"),
        pytest.param(fields_for(wa_body([TEXT_MESSAGE, {**TEXT_MESSAGE, "from": None}])),
                     f"{VALUE}.messages[1].from must be a non-empty string", id="second-message-bad"),
        pytest.param(fields_for({"text": "hola", "contact": {}}), "payload.contact.phone must be a non-empty string",
                     id="simple-without-phone"),
        pytest.param(fields_for({"text": "hola", "contact": {"phone": ""}}),
                     "payload.contact.phone must be a non-empty string", id="simple-empty-phone"),
        pytest.param(fields_for({"text": "hola"}), "payload.contact must be an object with a phone",
                     id="simple-without-contact"),
        pytest.param(fields_for({"contact": {"phone": ANA}}), "payload.text must be a string",
                     id="simple-without-text"),
        pytest.param(fields_for({"text": 5, "contact": {"phone": ANA}}), "payload.text must be a string",
                     id="simple-text-number"),
        pytest.param(fields_for({"object": "whatsapp_business_account"}),
                     "payload is neither a WhatsApp webhook body (entry[]) nor {text, contact}", id="unknown-shape"),
        pytest.param(resume_entry(resume_json("later")),
                     'engine_resume reason must be "delay", "timeout", "expire" or "handoff", got "later"',
                     id="resume-bad-reason"),
        pytest.param(resume_entry(resume_json(token="")), "engine_resume needs a token and a contact",
                     id="resume-empty-token"),
        pytest.param(resume_entry(resume_json(contact="")), "engine_resume needs a token and a contact",
                     id="resume-empty-contact"),
        pytest.param(resume_entry(resume_json(org=5)),
                     "engine_resume must be [reason, token, org_id, channel_id, contact]",
                     id="resume-number"),
        pytest.param(resume_entry("{"), "engine_resume is not valid JSON", id="resume-not-json"),
        pytest.param(resume_entry("{}"), "engine_resume must be [reason, token, org_id, channel_id, contact]",
                     id="resume-object"),
    ],
)
def test_invalid_entry_reason(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidPayload) as raised:
        parse_entry(STREAM_ID, fields)
    assert str(raised.value) == reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param("[" * 10_000 + "]" * 10_000,
                     "payload is not valid JSON: maximum recursion depth exceeded while decoding a JSON array "
                     "from a unicode string", id="arrays"),
        pytest.param('{"a":' * 10_000 + "1" + "}" * 10_000,
                     "payload is not valid JSON: maximum recursion depth exceeded while decoding a JSON object "
                     "from a unicode string", id="objects"),
        pytest.param('{"entry": ' + "[" * 10_000 + "]" * 10_000 + "}",
                     "payload is not valid JSON: maximum recursion depth exceeded while decoding a JSON array "
                     "from a unicode string", id="inside-entry"),
    ],
)
def test_payload_nested_10000_levels_is_invalid_not_recursion_error(payload: str, reason: str) -> None:
    with pytest.raises(InvalidPayload) as raised:
        parse_entry(STREAM_ID, {"org_id": "acme", "payload": payload})
    assert str(raised.value) == reason


def test_invalid_payload_is_a_value_error() -> None:
    """The runtime maps InvalidPayload to `invalid-payload` in the DLQ; it stays a ValueError."""
    assert issubclass(InvalidPayload, ValueError)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"org_id": "o" * 129, "payload": json.dumps({"text": "hola", "contact": {"phone": "1"}})},
         "org_id is longer than 128 characters"),
        ({"org_id": "acme", "payload": json.dumps({"text": "hola", "contact": {"phone": "5" * 65}})},
         "contact is longer than 64 characters"),
    ],
)
def test_ids_longer_than_their_columns_are_invalid(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidPayload) as raised:
        parse_entry(STREAM_ID, fields)
    assert str(raised.value) == reason
