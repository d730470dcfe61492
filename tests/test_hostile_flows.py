"""Hostile flows: patterns that would backtrack forever, huge paths, huge or deep graphs."""

from __future__ import annotations

import json
import time

from flow_engine.core.control import Control
from flow_engine.core.graph import parse_flow, validate
from flow_engine.core.inbound import Message
from flow_engine.core.interpreter import interpret
from flow_engine.core.limits import cap_outputs
from flow_engine.core.outcome import Contact


def test_a_catastrophic_pattern_runs_in_linear_time() -> None:
    flow = parse_flow({"nodes": [], "paths": {"path_default": [
        {"type": "wait_for_reply", "pattern": "(a+)+$"},
        {"type": "action", "action": "send_text", "text": "matched"}]}})
    started = interpret(flow, Message("1-0/0", "acme", "ch", "521", "hola"), None, Contact("521"), 0)
    attack = Message("2-0/0", "acme", "ch", "521", "a" * 50_000 + "!")
    began = time.perf_counter()
    outcome = interpret(flow, attack, started.wait_after, Contact("521"), 0)
    elapsed_s = time.perf_counter() - began
    assert outcome.ignored == "no-match"
    assert elapsed_s < 1.0  # a backtracking engine needs about 2^50000 steps here; RE2 takes milliseconds


def test_a_10000_step_path_runs_to_its_end_when_the_step_cap_allows_it() -> None:
    steps = [{"type": "set_attribute", "key": f"k{n % 10}", "value": n} for n in range(9_999)]
    steps.append({"type": "action", "action": "send_text", "text": "{{contact.attributes.k8}}"})
    flow = parse_flow({"nodes": [], "paths": {"path_default": steps}})
    assert flow.problems == ()
    outcome = interpret(flow, Message("1-0/0", "acme", "ch", "521", "hola"), None, Contact("521"), 0,
                        control=Control(max_steps=10_000))
    assert len(outcome.attributes) == 9_999 and [m.content for m in outcome.outbox] == ["9998"]
    assert outcome.run is not None and (outcome.run.status, outcome.run.last_step) == ("completed", "path_default:9999")


def test_the_default_step_cap_fails_the_run_at_the_1001st_step() -> None:
    steps = [{"type": "set_attribute", "key": f"k{n % 10}", "value": n} for n in range(9_999)]
    flow = parse_flow({"nodes": [], "paths": {"path_default": steps}})
    outcome = interpret(flow, Message("1-0/0", "acme", "ch", "521", "hola"), None, Contact("521"), 0)
    assert len(outcome.attributes) == 1000
    assert outcome.run is not None and (outcome.run.status, outcome.run.last_step) == ("failed", "path_default:1000")
    assert outcome.failure is not None and (outcome.failure.code, outcome.failure.detail) == (
        "loop-limit", "paths.path_default[1000]: loop-limit: more than 1000 steps without a reply from the contact")


def test_a_5_mb_graph_is_rejected_with_the_limit() -> None:
    big = {"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "x" * 1000} for _ in range(5_000)]}}
    assert len(json.dumps(big)) > 5_000_000
    assert validate(big) == ["graph: larger than the limit of 1000000 characters of JSON"]


def test_a_graph_nested_too_deep_is_rejected_with_the_limit() -> None:
    deep: object = {}
    for _ in range(100):
        deep = {"d": deep}
    assert validate({"nodes": [], "paths": {"p": [{"type": "action", "action": "webhook", "data": deep}]}}) == [
        "graph: nested deeper than the limit of 64 levels"]


def test_nul_characters_and_lone_surrogates_are_refused_where_they_stand() -> None:
    graph = json.loads('{"nodes": [{"type": "intent", "map": {"default": "p"}}], "paths": {"p": ['
                       '{"type": "action", "action": "send_text", "text": "a\\u0000b"},'
                       '{"type": "action", "action": "webhook", "data": {"k\\ud800": 1, "ok": ["x", "\\udfff"]}}]}}')
    assert validate(graph) == [
        "paths.p[0].text: holds a NUL character (\\u0000)",
        "paths.p[1].data: a key holds a lone surrogate (an unpaired \\ud800-\\udfff escape)",
        "paths.p[1].data.ok[1]: holds a lone surrogate (an unpaired \\ud800-\\udfff escape)",
    ]


def test_an_event_whose_outputs_exceed_the_limit_causes_none_of_them_and_fails_its_run_where_it_stopped() -> None:
    flow = parse_flow({"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "hola"},
        *({"type": "action", "action": "webhook", "data": {"blob": "x" * 1000}} for _ in range(30)),
        {"type": "wait_for_reply", "seconds": 60}]}})
    outcome = interpret(flow, Message("1-0/0", "acme", "ch", "521", "hola"), None, Contact("521"), 0)
    assert cap_outputs(outcome, max_outputs=31, max_bytes=1_000_000) is outcome  # within both limits
    for capped in (cap_outputs(outcome, max_outputs=30, max_bytes=1_000_000),
                   cap_outputs(outcome, max_outputs=100, max_bytes=20_000)):
        assert (capped.effects, capped.wait_after, capped.timers_add) == ((), None, ())
        assert capped.run is not None and capped.run.status == "failed"
        assert capped.failure is not None and capped.failure.code == "output-limit"
        assert capped.failure.detail.startswith("path_default:31: one message caused 31 outputs (")
        assert capped.run.context["error"] == capped.failure.detail
