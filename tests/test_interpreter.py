"""The interpreter's decisions that a transcript cannot show: races, replays, failures, no flow."""

from __future__ import annotations

import json

from flow_engine.core.execution import timer_of
from flow_engine.core.graph import parse_flow
from flow_engine.core.inbound import Message, Resume
from flow_engine.core.interpreter import interpret
from flow_engine.core.outcome import Contact, Outcome
from tests.conftest import EXAMPLE_FLOWS

VERIFY = parse_flow(json.loads((EXAMPLE_FLOWS / "verification_code.json").read_text()), flow_id="verify", version=3)
CONTACT = Contact("5215550001", "Ana")


def message(text: str, key: str = "1700000000000-0/0") -> Message:
    return Message(key=key, org_id="acme", channel_id="ch1", contact="5215550001", text=text)


def resume_of(outcome: Outcome) -> Resume:
    return outcome.timers_add[0].resume()


def test_a_replayed_event_yields_the_same_outcome_and_ids() -> None:
    first = interpret(VERIFY, message("hola"), None, CONTACT, 1000)
    again = interpret(VERIFY, message("hola"), None, CONTACT, 1000)
    assert first == again
    assert first.outbox[0].client_id == again.outbox[0].client_id
    other = interpret(VERIFY, message("hola", key="1700000000001-0/0"), None, CONTACT, 1000)
    assert other.outbox[0].client_id != first.outbox[0].client_id
    assert other.run is not None and first.run is not None and other.run.id != first.run.id


def test_reply_first_then_timeout_the_timeout_is_a_no_op() -> None:
    started = interpret(VERIFY, message("hola"), None, CONTACT, 0)
    replied = interpret(VERIFY, message("123456", key="2-0/0"), started.wait_after, CONTACT, 29_999)
    assert [m.content for m in replied.outbox] == ["¡Código recibido: 123456! Gracias."]
    assert replied.timers_cancel == started.timers_add
    late = interpret(VERIFY, resume_of(started), replied.wait_after, CONTACT, 30_000)
    assert late.ignored == "stale-timer"
    assert late.effects == () and late.run is None and not late.wait_changed


def test_timeout_first_then_reply_the_reply_starts_a_new_run() -> None:
    started = interpret(VERIFY, message("hola"), None, CONTACT, 0)
    timed_out = interpret(VERIFY, resume_of(started), started.wait_after, CONTACT, 30_000)
    assert [m.content for m in timed_out.outbox] == ["No recibí tu código a tiempo. Escribe de nuevo para reintentar."]
    late = interpret(VERIFY, message("123456", key="2-0/0"), timed_out.wait_after, CONTACT, 30_001)
    assert late.run is not None and started.run is not None
    assert late.run.id != started.run.id
    assert [m.content for m in late.outbox] == ["Envíame el código de 6 dígitos que recibiste."]


def test_a_timer_of_an_older_wait_does_not_resume_the_current_one() -> None:
    first = interpret(VERIFY, message("hola"), None, CONTACT, 0)
    second = interpret(VERIFY, message("hola", key="9-0/0"), None, CONTACT, 0)
    outcome = interpret(VERIFY, resume_of(first), second.wait_after, CONTACT, 30_000)
    assert outcome.ignored == "stale-timer" and outcome.wait_after == second.wait_after


def test_a_resume_event_is_never_taken_as_a_reply() -> None:
    flow = parse_flow({"nodes": [], "paths": {"path_default": [
        {"type": "wait_for_reply", "pattern": ".*", "seconds": 1, "timeout_path": "late"},
        {"type": "action", "action": "send_text", "text": "reply"}],
        "late": [{"type": "action", "action": "send_text", "text": "timeout"}]}})
    started = interpret(flow, message("hola"), None, CONTACT, 0)
    outcome = interpret(flow, resume_of(started), started.wait_after, CONTACT, 1000)
    assert [m.content for m in outcome.outbox] == ["timeout"]


def test_no_active_flow_answers_with_the_fixed_spanish_reply_per_intent() -> None:
    replies = {text: interpret(None, message(text), None, CONTACT, 0) for text in ("hola", "precio", "ayuda", "xyz")}
    assert {text: [m.content for m in o.outbox] for text, o in replies.items()} == {
        "hola": ["¡Hola! ¿En qué podemos ayudarte?"],
        "precio": ["Con gusto te compartimos nuestros precios. Un asesor te enviará la información en breve."],
        "ayuda": ["Lamentamos el inconveniente. Cuéntanos qué ocurre y te ayudaremos."],
        "xyz": ["Gracias por tu mensaje. En breve te responderemos."],
    }
    assert all(o.run is None and o.outbox[0].run_id == "" for o in replies.values())


def test_an_invalid_flow_fails_the_run_with_every_located_problem() -> None:
    flow = parse_flow({"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "hi"}, {"type": "escalate"}]}}, flow_id="bad", version=2)
    outcome = interpret(flow, message("hola"), None, CONTACT, 0)
    assert outcome.effects == ()
    assert outcome.failure is not None and outcome.failure.code == "flow-error"
    assert outcome.failure.detail == 'paths.path_default[1]: unknown step type "escalate"'
    assert outcome.run is not None
    assert (outcome.run.status, outcome.run.flow_id, outcome.run.flow_version) == ("failed", "bad", 2)
    assert outcome.run.context["error"] == 'paths.path_default[1]: unknown step type "escalate"'


def test_a_waiting_run_whose_flow_was_deleted_fails_with_the_reason() -> None:
    started = interpret(VERIFY, message("hola"), None, CONTACT, 0)
    outcome = interpret(None, message("123456", key="2-0/0"), started.wait_after, CONTACT, 10)
    assert outcome.run is not None and started.run is not None
    assert (outcome.run.id, outcome.run.status) == (started.run.id, "failed")
    assert outcome.run.context["error"] == "flow verify v3 no longer exists"
    assert outcome.wait_after is None and outcome.timers_cancel == started.timers_add


def test_a_wait_records_what_it_waits_for_in_the_run_context() -> None:
    started = interpret(VERIFY, message("hola"), None, CONTACT, 500)
    assert started.run is not None and started.wait_after is not None
    assert started.run.context == {
        "intent": "greeting", "contact": "5215550001", "channel_id": "ch1", "trigger_text": "hola",
        "waiting_for": {"kind": "reply", "step": "ask:1", "token": started.wait_after.token, "due_ms": 30_500,
                        "pattern": "\\b\\d{6}\\b", "timeout_path": "expired", "expires": False},
    }
    assert timer_of(started.wait_after, message("x")) == started.timers_add[0]


def test_the_profile_name_of_a_new_contact_is_recorded() -> None:
    event = Message(key="1-0/0", org_id="acme", channel_id="ch1", contact="5215550001", text="hola", name="Ana María")
    assert interpret(VERIFY, event, None, Contact("5215550001"), 0).contact_name == "Ana María"
    assert interpret(VERIFY, event, None, Contact("5215550001", "Ana María"), 0).contact_name is None


def test_a_new_contact_is_greeted_by_its_profile_name_and_a_stored_name_wins() -> None:
    shop = parse_flow(json.loads((EXAMPLE_FLOWS / "shop_demo.json").read_text()))
    event = Message(key="1-0/0", org_id="acme", channel_id="ch1", contact="5215550001", text="hola", name="Ana")
    assert interpret(shop, event, None, Contact("5215550001"), 0).outbox[0].content == (
        "¡Hola Ana! Bienvenido a la tienda.")
    stored = interpret(shop, event, None, Contact("5215550001", "Sra. Pérez"), 0)
    assert stored.outbox[0].content == "¡Hola Sra. Pérez! Bienvenido a la tienda."
    assert stored.contact_name is None
