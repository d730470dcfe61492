"""Conversation control decisions a transcript does not show on its own (SPEC §5.1): which timer may
resume which wait, waits stored by the previous engine, interrupts during a delay, the held limit,
held messages under any interleaving, and the Mermaid edges of the new ways a wait ends."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from flow_engine.adapters.effects import WAIT_FIELDS, dump_wait, load_wait
from flow_engine.core.assets import asset_kind
from flow_engine.core.control import Control
from flow_engine.core.conversation import OneFlow, handle
from flow_engine.core.graph import parse_flow
from flow_engine.core.inbound import Message, Resume
from flow_engine.core.interpreter import interpret
from flow_engine.core.mermaid import to_mermaid
from flow_engine.core.outcome import Contact
from flow_engine.core.simulator import Simulator

CONTACT = Contact("5215550001")
ASK = parse_flow({"nodes": [], "paths": {"path_default": [
    {"type": "action", "action": "send_text", "text": "¿código?"},
    {"type": "wait_for_reply", "pattern": "^\\d{6}$", "seconds": 60},
    {"type": "action", "action": "send_text", "text": "ok"}]}}, flow_id="ask", version=1)
ECHO = parse_flow({"nodes": [], "paths": {"path_default": [
    {"type": "action", "action": "send_text", "text": "eco {{message.text}}"},
    {"type": "delay", "ms": 700},
    {"type": "action", "action": "send_text", "text": "tarde {{message.text}}"}]}}, flow_id="echo", version=1)


def message(text: str, n: int = 1) -> Message:
    return Message(f"{n}-0/0", "acme", "ch1", "5215550001", text)


def test_a_timer_whose_reason_is_not_the_waits_is_ignored_as_stale() -> None:
    started = interpret(ASK, message("hola"), None, CONTACT, 0)
    wait = started.wait_after
    assert wait is not None and wait.timer_reason == "timeout"
    for reason in ("delay", "expire"):  # the wait's timer is its timeout
        wrong = Resume(f"timer:{wait.token}", "acme", "ch1", "5215550001", wait.token, reason)
        outcome = interpret(ASK, wrong, wait, CONTACT, 60_000)
        assert (outcome.ignored, outcome.effects, outcome.wait_after, outcome.run) == ("stale-timer", (), wait, None)


def test_a_wait_stored_by_the_previous_engine_loads_with_defaults_and_expires_from_its_next_message() -> None:
    legacy = json.dumps(["run1", "ask", 1, "path_default", 1, "reply", "tok", None, "hola", "default"])
    wait = load_wait(legacy)
    assert wait is not None and (wait.attempts, wait.expires, wait.steps, wait.due_ms) == (0, False, 0, None)
    outcome = interpret(ASK, message("nope", 2), wait, CONTACT, 5_000, control=Control(expire_after_min=10))
    assert outcome.ignored == "no-match"
    assert outcome.wait_after == replace(wait, due_ms=605_000, expires=True)
    assert [(t.token, t.due_ms, t.reason) for t in outcome.timers_add] == [("tok", 605_000, "expire")]
    assert load_wait(dump_wait(outcome.wait_after)) == outcome.wait_after
    assert len(json.loads(dump_wait(outcome.wait_after))) == len(WAIT_FIELDS)


def test_an_expiry_timer_ends_the_run_as_expired_with_no_output() -> None:
    flow = parse_flow({"nodes": [], "paths": {"path_default": [{"type": "wait_for_reply"}]}}, flow_id="f", version=1)
    started = interpret(flow, message("hola"), None, CONTACT, 0, control=Control(expire_after_min=2))
    (timer,) = started.timers_add
    assert (timer.reason, timer.due_ms) == ("expire", 120_000)
    expired = interpret(flow, timer.resume(), started.wait_after, CONTACT, 120_000, control=Control(expire_after_min=2))
    assert (expired.effects, expired.wait_after, expired.timers_cancel) == ((), None, ())
    assert expired.run is not None and (expired.run.status, expired.run.context["ended"]) == ("expired", "expired")


def test_an_interrupt_word_during_a_delay_interrupts_only_when_nothing_is_held_before_it() -> None:
    control = Control(interrupt_words=("menu",))
    started = interpret(ECHO, message("hola"), None, CONTACT, 0, control=control)
    alone = interpret(ECHO, message("MENU", 2), started.wait_after, CONTACT, 10, control=control)
    assert alone.ended is not None and alone.ended.status == "interrupted"
    assert [t.reason for t in alone.timers_cancel] == ["delay"]
    assert [m.content for m in alone.outbox] == ["eco MENU"]
    behind = interpret(ECHO, message("MENU", 2), started.wait_after, CONTACT, 10, control=control, held=1)
    assert (behind.hold, behind.ended, behind.effects) == (True, None, ())


def test_past_the_held_limit_the_message_goes_to_the_dlq() -> None:
    started = interpret(ECHO, message("hola"), None, CONTACT, 0)
    outcome = interpret(ECHO, message("x", 2), started.wait_after, CONTACT, 0, control=Control(max_held=3), held=3)
    assert outcome.failure is not None and (outcome.failure.code, outcome.hold, outcome.effects) == (
        "held-limit", False, ())
    assert outcome.wait_after == started.wait_after and outcome.run is None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=25))
def test_every_echo_message_is_answered_twice_in_order_whatever_the_interleaving(moves: list[bool]) -> None:
    """True: the contact writes; False: the earliest timer comes due. Then every timer comes due."""
    sim = Simulator(ECHO, org_id="acme", channel_id="ch1", contact=CONTACT)
    said, happened = [], []
    for n, says in enumerate(moves):
        if says:
            said.append(f"m{n}")
            happened += sim.say(f"m{n}")
        elif sim.timers:
            happened += sim.advance((min(t.due_ms for t in sim.timers.values()) - sim.now_ms) / 1000)
    happened += sim.advance(3600)
    sent = [m for h in happened for m in h.outcome.outbox]
    assert [m.content for m in sent] == [text for m in said for text in (f"eco {m}", f"tarde {m}")]
    assert len({m.client_id for m in sent}) == len(sent)
    assert sim.held == [] and sim.wait is None and sim.timers == {}


def test_held_messages_are_released_in_order_as_the_reply_and_then_as_new_entries() -> None:
    flow = parse_flow({"nodes": [], "paths": {"path_default": [
        {"type": "delay", "seconds": 1}, {"type": "wait_for_reply"},
        {"type": "action", "action": "send_text", "text": "r {{message.text}}"}]}}, flow_id="f", version=1)
    flows = OneFlow(flow)
    (started,) = handle(message("a", 1), None, [], CONTACT, 0, flows)
    (held_b,) = handle(message("b", 2), started.wait_after, [], CONTACT, 0, flows)
    (held_c,) = handle(message("c", 3), started.wait_after, [message("b", 2)], CONTACT, 0, flows)
    assert held_b.hold and held_c.hold
    (timer,) = started.timers_add
    outcomes = handle(timer.resume(), started.wait_after, [message("b", 2), message("c", 3)], CONTACT, 1000, flows)
    assert [(o.event_key, o.released) for o in outcomes] == [("timer:" + timer.token, False), ("2-0/0", True),
                                                            ("3-0/0", True)]
    assert [m.content for m in outcomes[1].outbox] == ["r b"]  # b was the reply
    assert outcomes[2].wait_after is not None and outcomes[2].wait_after.kind == "delay"  # c entered the flow


def test_the_graph_draws_re_prompts_attempts_expiry_and_interrupts() -> None:
    flow = parse_flow({"interrupt": ["menu"], "expire_after_minutes": 30, "nodes": [], "paths": {
        "path_default": [{"type": "wait_for_reply", "pattern": "^si$", "no_match_text": "¿sí?", "max_attempts": 3,
                          "seconds": 7200, "timeout_path": "late"}],
        "late": [{"type": "action", "action": "send_text", "text": "tarde"}]}})
    lines = to_mermaid(flow).splitlines()
    assert '  interrupt(["interrupt: menu"]) -.->|ends the paused run| in' in lines
    assert "  p_path_default_0 -.->|timeout| p_late_0" in lines
    assert '  p_path_default_0 -.->|"no match: ¿sí?"| p_path_default_0' in lines
    assert "  p_path_default_0 -.->|3 attempts| p_late_0" in lines
    assert "  p_path_default_0 -.->|expires, 30 min| expired((expired))" in lines


def test_a_timer_of_a_wait_stored_by_the_previous_engine_still_resumes_it() -> None:
    legacy = json.dumps(["run1", "ask", 1, "path_default", 1, "reply", "tok", 60_000, "hola", "default"])
    wait = load_wait(legacy)
    assert wait is not None and wait.timer_reason == "timeout"
    timeout = Resume("timer:tok", "acme", "ch1", "5215550001", "tok", "timeout")  # as its timer member says
    outcome = interpret(ASK, timeout, wait, CONTACT, 60_000)
    assert outcome.ignored is None and [m.content for m in outcome.outbox] == ["ok"]
    assert outcome.run is not None and (outcome.run.status, outcome.run.last_step) == ("completed", "path_default:2")
    delay = parse_flow({"nodes": [], "paths": {"p": [{"type": "delay", "seconds": 1},
                                                     {"type": "action", "action": "send_text", "text": "luego"}]}},
                       flow_id="d", version=1)
    paused = load_wait(json.dumps(["run2", "d", 1, "p", 0, "delay", "tik", 1000, "hola", "default"]))
    resumed = interpret(delay, Resume("timer:tik", "acme", "ch1", "5215550001", "tik", "delay"), paused, CONTACT, 1000)
    assert [m.content for m in resumed.outbox] == ["luego"]


def test_asset_kinds_follow_the_extension_of_the_links_path() -> None:
    assert [asset_kind(link) for link in (
        "https://cdn.example.org/a.JPEG#top", "https://cdn.example.org/informe.PDF?dl=1", "https://x.org/v/clip.3gp",
        "https://x.org/nota.m4a", "https://x.org/tabla.xlsx", "https://x.org/archivo.tar.gz", "https://x.org/v.mp4/",
        "https://x.org.mp4", "sin-extension")] == [
        "image", "document", "video", "audio", "document", "image", "image", "image", "image"]
