"""The restaurant booking flow (SPEC §5.2) end to end through the real processes: branches, jumps,
an A/B greeting, saved replies, and a reply racing the timeout of the wait before a branch."""

from __future__ import annotations

import json
import time

from flow_engine.adapters.keys import DLQ, WEBHOOKS
from tests.devstack import Stack
from tests.runtime.conftest import graph_of, new_org

# The test payloads carry no profile name: {{contact.name}} renders empty.
GREETINGS = {"¡Hola ! Bienvenido a La Terraza.", "¡Hola ! Soy el asistente de reservas de La Terraza."}
MENU = "¿Qué deseas hacer?\n1. Reservar una mesa\n2. Ver el horario\n3. Salir"
PARTY = "¿Para cuántas personas?"
GONE = "Parece que te fuiste. Escribe cuando quieras reservar."


def texts(stack: Stack, org: str, phone: str) -> list[str]:
    return [e["text"] for e in stack.outbox(org) if e["to"] == phone]


def say(stack: Stack, org: str, phone: str, text: str, replies: int) -> list[str]:
    """Send `text` and wait for the outbox to hold `replies` more texts for the contact."""
    before = len(texts(stack, org, phone))
    stack.send(org, phone, text)
    stack.wait_until(lambda: len(texts(stack, org, phone)) >= before + replies, 15, f"{replies} replies to {text!r}")
    return texts(stack, org, phone)[before:]


def test_a_booking_through_the_menu_saves_the_answers_and_sends_the_webhook(stack: Stack) -> None:
    org, phone = new_org(), "5215550101"
    flow_id = stack.load_flow(org, graph_of("restaurant_booking"))
    greeting, menu = say(stack, org, phone, "hola", 2)
    assert greeting in GREETINGS and menu == MENU
    assert say(stack, org, phone, "no sé", 2) == ["No entendí tu respuesta. Responde 1, 2 o 3.", MENU]
    assert say(stack, org, phone, "Quiero reservar", 1) == [PARTY]
    assert say(stack, org, phone, "somos 20", 2) == ["Recibimos grupos de 1 a 12 personas.", PARTY]
    assert say(stack, org, phone, "somos 4", 1) == ["¿Qué día quieres venir? (día/mes, por ejemplo 24/12)"]
    assert say(stack, org, phone, "el 24/12", 1) == ["¿A qué correo te enviamos la confirmación?"]
    assert say(stack, org, phone, "ana arroba", 2) == ["Ese correo no parece válido.",
                                                       "¿A qué correo te enviamos la confirmación?"]
    assert say(stack, org, phone, "es ana@example.com", 1) == [
        "¡Listo! Mesa para 4 el 24/12. Te enviamos la confirmación a ana@example.com."]
    stack.settled()
    webhooks = [json.loads(e["body"]) for e in stack.stream(WEBHOOKS, org)]
    assert [w["data"] for w in webhooks] == [
        {"event": "booking", "party_size": "4", "date": "24/12", "email": "ana@example.com"}]
    contacts = stack.rows("select attributes from contacts where org_id = :org", org=org)
    assert [r[0] for r in contacts] == [{"party_size": "4", "booking_date": "24/12", "email": "ana@example.com"}]
    runs = stack.rows("select status, last_step, flow_id, context from flow_runs where org_id = :org", org=org)
    assert [(r[0], r[1], r[2]) for r in runs] == [("completed", "confirm:2", flow_id)]
    variant = runs[0][3]["variants"]["start:0"]
    assert variant in ("greet_a", "greet_b")
    assert greeting == ("¡Hola ! Bienvenido a La Terraza." if variant == "greet_a"
                        else "¡Hola ! Soy el asistente de reservas de La Terraza.")


def test_a_reply_racing_the_timeout_before_a_branch_gets_exactly_one_outcome(stack: Stack) -> None:
    org = new_org()
    graph = graph_of("restaurant_booking")
    graph["paths"]["menu"][1]["seconds"] = 1  # the flow's 300 s, shortened
    stack.load_flow(org, graph)
    phones = [f"52155502{n:02d}" for n in range(8)]
    started = time.monotonic()
    for phone in phones:
        stack.send(org, phone, "hola")
    stack.wait_outbox(org, 2 * len(phones))
    for n, phone in enumerate(phones):  # replies around the moment the timeouts are due (1 s after hola)
        time.sleep(max(0.0, started + 0.7 + n * 0.15 - time.monotonic()))
        stack.send(org, phone, "1")
    time.sleep(1.5)
    stack.settled()
    for phone in phones:
        after_menu = texts(stack, org, phone)[2:]
        # The reply won: it is handled by the branch. The timeout won: the run ended on the timeout
        # path, and the reply entered the flow afresh (whose own 1 s menu timeout may have come by
        # now). Never both, never neither.
        assert after_menu == [PARTY] or (
            after_menu[0] == GONE and after_menu[1] in GREETINGS and after_menu[2:] in ([MENU], [MENU, GONE])
        ), after_menu
    assert stack.stream(DLQ, org) == []
    runs = stack.rows("select contact, status, last_step from flow_runs where org_id = :org", org=org)
    for phone in phones:
        mine = sorted((status, step) for contact, status, step in runs if contact == phone)
        assert mine in ([("running", "party:1")], [("completed", "gone:1"), ("running", "menu:1")],
                        [("completed", "gone:1"), ("completed", "gone:1")]), mine
