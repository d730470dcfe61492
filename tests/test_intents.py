"""The built-in keywords cover the NLP service's whole label set, in Spanish and English."""

from __future__ import annotations

import pytest

from flow_engine.core.intents import LABELS, classify


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("¡Hola!", "greeting"), ("good morning", "greeting"),
        ("¿Cuánto cuesta?", "pricing"), ("what are your prices", "pricing"),
        ("necesito ayuda", "support"), ("it is not working", "support"),
        ("quiero hablar con un asesor", "handoff"), ("a real person please", "handoff"),
        ("quiero comprar dos", "sales"), ("I want to buy one", "sales"), ("hacer un pedido", "sales"),
        ("¡Muchas gracias!", "gratitude"), ("thank you so much", "gratitude"),
        ("adiós", "goodbye"), ("hasta mañana", "goodbye"), ("bye!", "goodbye"),
        ("xyz", "default"),
    ],
)
def test_each_label_has_keywords_in_both_languages(text: str, intent: str) -> None:
    assert classify(text) == intent


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("hola, ¿cuánto cuesta?", "pricing"),  # the SPEC's order among its four is kept
        ("hola, necesito ayuda con el precio", "pricing"),
        ("hola, quiero comprar", "sales"),  # a greeting opens many messages: the new labels win over it
        ("hola, gracias", "gratitude"),
        ("gracias, adiós", "gratitude"),
        ("quiero comprar, ¿cuánto cuesta?", "pricing"),
        ("quiero comprar, pásame con un asesor", "handoff"),
    ],
)
def test_when_several_match_the_documented_order_decides(text: str, intent: str) -> None:
    assert classify(text) == intent


def test_the_label_set_is_the_nlp_services() -> None:
    assert LABELS == ("greeting", "pricing", "support", "handoff", "sales", "gratitude", "goodbye", "default")
