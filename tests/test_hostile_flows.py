"""Hostile flows: patterns that would backtrack forever, huge paths, huge or deep graphs."""

from __future__ import annotations

import json
import time

from flow_engine.core.control import Control
from flow_engine.core.graph import parse_flow, validate
from flow_engine.core.inbound import Message
from flow_engine.core.interpreter import interpret
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
