"""Keyword intent classifier: Spanish and English keywords, accents and case ignored."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# The labels of the platform's NLP service; a flow's intent node maps any of them.
LABELS = ("greeting", "pricing", "support", "handoff", "sales", "gratitude", "goodbye", "default")

# Checked in this order: when several intents match, the first one wins. The SPEC's four keep their
# order (pricing, support, handoff, greeting); sales comes after handoff ("quiero comprar, hablar con
# un asesor" is a handoff), and gratitude and goodbye come last but before greeting, which opens many
# messages ("hola, gracias por todo" thanks; "hola, quiero comprar" wants to buy).
BUILTIN_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "pricing",
        ("precio", "precios", "costo", "costos", "cuesta", "cuestan", "cuanto", "cuanto vale", "tarifa",
         "tarifas", "plan", "planes", "cotizacion", "presupuesto", "price", "prices", "pricing", "cost",
         "costs", "how much", "quote", "fee", "fees", "rate", "rates"),
    ),
    (
        "support",
        ("ayuda", "soporte", "problema", "problemas", "falla", "fallo", "error", "no funciona", "reclamo",
         "queja", "help", "support", "problem", "issue", "broken", "not working", "bug"),
    ),
    (
        "handoff",
        ("asesor", "asesora", "humano", "agente", "persona", "operador", "hablar con alguien", "human",
         "agent", "representative", "operator", "real person", "someone"),
    ),
    (
        "sales",
        ("comprar", "compra", "quiero comprar", "contratar", "contrato", "adquirir", "pedido", "hacer un pedido",
         "ordenar", "suscribirme", "suscripcion", "me interesa", "disponible", "disponibilidad", "buy", "purchase",
         "order", "place an order", "subscribe", "subscription", "sign up", "interested in", "available"),
    ),
    (
        "gratitude",
        ("gracias", "muchas gracias", "mil gracias", "te agradezco", "le agradezco", "agradecido", "agradecida",
         "thanks", "thank you", "thx", "ty", "appreciate it", "much appreciated"),
    ),
    (
        "goodbye",
        ("adios", "hasta luego", "hasta pronto", "hasta manana", "nos vemos", "chao", "chau", "bye", "goodbye",
         "good bye", "see you", "see ya", "farewell", "take care"),
    ),
    (
        "greeting",
        ("hola", "holi", "buenas", "buenos dias", "buen dia", "buenas tardes", "buenas noches", "saludos",
         "que tal", "hello", "hi", "hey", "good morning", "good afternoon", "good evening", "greetings"),
    ),
)

_WORD = re.compile(r"[a-z0-9]+")


def normalize(text: str) -> str:
    """Lower case, accents stripped, words separated by single spaces and padded at both ends."""
    if text.isascii():  # the common case, and the same result: no accents to strip
        plain = text.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", text.casefold())
        plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " " + " ".join(_WORD.findall(plain)) + " "


def normalize_word(text: str) -> str:
    """A whole text compared as a word: trimmed, lower case, accents stripped, inner spaces single
    ("  Menú " and "menu" are the same; "menu!" is not)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).split())


Keywords = tuple[tuple[str, tuple[str, ...]], ...]


def compile_keywords(table: Iterable[tuple[str, Iterable[str]]]) -> Keywords:
    """Normalize a keyword table once, so classify() only does substring checks."""
    compiled = ((intent, tuple(normalize(word) for word in words)) for intent, words in table)
    return tuple((intent, tuple(word for word in words if word.strip())) for intent, words in compiled)


_BUILTIN = compile_keywords(BUILTIN_KEYWORDS)


def classify(text: str, custom: Keywords = ()) -> str:
    """The intent of `text`: custom keywords (compiled) first, in their order, then the built-in ones."""
    words = normalize(text)
    return match_words(words, custom) or match_words(words, _BUILTIN) or "default"


def match(text: str, table: Keywords) -> str | None:
    """The first intent of `table` (compiled) with a keyword in `text`, or None."""
    return match_words(normalize(text), table)


def builtin_intent(words: str) -> str:
    """The built-in keywords' intent of normalized `words` (`normalize`), else "default"."""
    return match_words(words, _BUILTIN) or "default"


def match_words(words: str, table: Keywords) -> str | None:
    """`match` on text already normalized (`normalize`): normalize once, match against several tables."""
    for intent, keywords in table:
        for keyword in keywords:
            if keyword in words:
                return intent
    return None


FALLBACK_REPLIES: dict[str, dict[str, str]] = {
    "es": {
        "greeting": "¡Hola! ¿En qué podemos ayudarte?",
        "pricing": "Con gusto te compartimos nuestros precios. Un asesor te enviará la información en breve.",
        "support": "Lamentamos el inconveniente. Cuéntanos qué ocurre y te ayudaremos.",
        "handoff": "Te comunicamos con un asesor. Por favor espera un momento.",
        "default": "Gracias por tu mensaje. En breve te responderemos.",
    },
    "en": {
        "greeting": "Hi! How can we help you?",
        "pricing": "Happy to share our prices. An agent will send you the details shortly.",
        "support": "Sorry for the trouble. Tell us what happened and we will help.",
        "handoff": "Connecting you with an agent. Please wait a moment.",
        "default": "Thanks for your message. We will get back to you shortly.",
    },
}


def fallback_reply(intent: str, language: str = "es") -> str:
    """The fixed reply sent when an org has no active flow."""
    replies = FALLBACK_REPLIES.get(language, FALLBACK_REPLIES["es"])
    return replies.get(intent, replies["default"])
