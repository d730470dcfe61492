"""The "branching" benchmark: events/s of the pure core on one core for a branch-heavy flow.

Each message enters a flow whose first step is a `branch` of 10 cases on `{{message.text}}` (every
kind of text test: words, phrases, beginnings, patterns, numbers, e-mail, phone, intent), then sends
the answer of its case. As in the interpreter benchmark, each iteration parses the nf:incoming entry
(a WhatsApp webhook body) and interprets it; the texts cycle so that each case, and the default, is
taken. Target (issue 12): >= 20,000 events/s. BENCH_EVENTS (default 50,000), BENCH_ROUNDS (5).
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from typing import Any

from bench.interpreter import _contact, _webhook_body, pinned_to_one_core
from flow_engine.core.graph import Flow, parse_flow
from flow_engine.core.inbound import parse_entry
from flow_engine.core.interpreter import interpret

TARGET_EVENTS_PER_S = 20_000
CASES: list[tuple[dict[str, Any], str]] = [
    ({"has_any_word": ["menu", "inicio"]}, "quiero ver el menú"),
    ({"has_all_words": "mesa terraza"}, "quiero una mesa en la terraza"),
    ({"has_phrase": "para llevar"}, "¿tienen comida para llevar?"),
    ({"has_beginning": "cancelar"}, "Cancelar mi reserva de mañana"),
    ({"matches": "\\b(\\d{1,2}):(\\d{2})\\b"}, "a las 21:30 por favor"),
    ({"has_phone": True}, "llámame al +52 55 1234 5678"),
    ({"has_email": True}, "mi correo es ana.perez@example.com"),
    ({"has_number_between": [1, 4]}, "seremos 3 personas"),
    ({"has_number_gt": 4}, "somos 12 en total"),
    ({"has_intent": "greeting"}, "¡Hola, buenas noches!"),
]
DEFAULT_TEXT = "ok 👍"


def flow() -> Flow:
    cases = [{**test, "path": f"case{n}"} for n, (test, _text) in enumerate(CASES)]
    paths: dict[str, Any] = {
        "path_default": [{"type": "branch", "cases": cases, "default": "other"}],
        "other": [{"type": "action", "action": "send_text", "text": "¿En qué te ayudo?"}],
    }
    for n in range(len(CASES)):
        paths[f"case{n}"] = [{"type": "action", "action": "send_text", "text": f"caso {n}: {{{{message.text}}}}"}]
    parsed = parse_flow({"nodes": [], "paths": paths})
    if parsed.problems:
        raise RuntimeError(f"the branching flow is invalid: {parsed.problems}")
    return parsed


def jobs(events: int) -> list[tuple[str, dict[str, str], Any, int]]:
    texts = [text for _test, text in CASES] + [DEFAULT_TEXT]
    built = []
    for i in range(events):
        phone, name, contact = _contact(i)
        now_ms = 1_700_000_000_000 + i * 37
        fields = {"source": "whatsapp", "org_id": "acme", "channel_id": "c1",
                  "payload": _webhook_body(i, phone, name, texts[i % len(texts)], now_ms // 1000)}
        built.append((f"{now_ms}-0", fields, contact, now_ms))
    return built


def _check(graph: Flow, built: list[tuple[str, dict[str, str], Any, int]]) -> None:
    """Each text takes its own case (the 11th the default): the benchmark measures what it says."""
    for n, (stream_id, fields, contact, now_ms) in enumerate(built[: len(CASES) + 1]):
        outcome = interpret(graph, parse_entry(stream_id, fields)[0], None, contact, now_ms)
        expected = f"caso {n}: " if n < len(CASES) else "¿En qué te ayudo?"
        if not outcome.outbox or not str(outcome.outbox[0].content).startswith(expected):
            raise RuntimeError(f"text {n} did not take its case: {outcome.outbox}")


def run() -> dict[str, Any]:
    events = int(os.environ.get("BENCH_EVENTS", "50000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    graph, built = flow(), jobs(events)
    _check(graph, built)
    rates = []
    with pinned_to_one_core():
        for _ in range(rounds):
            gc.collect()
            start = time.perf_counter_ns()
            for stream_id, fields, contact, now_ms in built:
                for event in parse_entry(stream_id, fields):
                    interpret(graph, event, None, contact, now_ms)
            rates.append(events / ((time.perf_counter_ns() - start) / 1e9))
    median = statistics.median(rates)
    passed = median >= TARGET_EVENTS_PER_S
    summary = (f"branching: {median:,.0f} events/s median (min {min(rates):,.0f}, max {max(rates):,.0f}; "
               f"{rounds} rounds x {events:,} events, a 10-case branch per message, cpu 1) | target >= "
               f"{TARGET_EVENTS_PER_S:,}: {'PASS' if passed else 'FAIL'}")
    return {"summary": summary, "passed": passed, "events_per_s": rates, "median": median}
