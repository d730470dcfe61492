"""`flow-engine validate` and parse_flow: every problem of a graph, each with its location."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flow_engine.core.graph import parse_flow, validate
from tests.conftest import BROKEN_PROBLEMS, EXAMPLE_FLOWS


def test_broken_example_reports_every_problem_with_its_location() -> None:
    problems = validate(json.loads((EXAMPLE_FLOWS / "broken.json").read_text()))
    assert problems == BROKEN_PROBLEMS


@pytest.mark.parametrize("name", ["shop_demo", "verification_code"])
def test_shared_examples_are_valid(name: str) -> None:
    assert validate(json.loads((EXAMPLE_FLOWS / f"{name}.json").read_text())) == []


def _path(*steps: object) -> dict[str, object]:
    return {"nodes": [], "paths": {"p": list(steps)}}


@pytest.mark.parametrize(
    ("graph", "problems"),
    [
        ([], ['graph: must be a JSON object with "nodes" and "paths"']),
        ({"nodes": {}, "paths": []}, ["paths: must be an object of name -> [steps]", "nodes: must be a list"]),
        ({"interrupt": "menu", "paths": {}}, ["interrupt: must be a list of non-empty strings"]),
        ({"expire_after_minutes": 0, "paths": {}},
         ["expire_after_minutes: must be a number of minutes above 0 and at most 527040 (a year), got 0"]),
        (_path({"type": "wait_for_reply", "max_attempts": 0}),
         ["paths.p[0].max_attempts: must be an integer from 1 to 1000, got 0"]),
        (_path({"type": "wait_for_reply", "no_match_text": ["x"]}), ["paths.p[0].no_match_text: must be a string"]),
        ({"nodes": [{"type": "intent", "map": {"x": "p"}, "keywords": {"x": "word"}}], "paths": {"p": []}},
         ["nodes[0].keywords.x: must be a list of non-empty strings"]),
        ({"nodes": [], "paths": {"p": "steps"}}, ["paths.p: must be a list of steps"]),
        (_path(7), ["paths.p[0]: a step must be an object"]),
        (_path({"text": "x"}), ['paths.p[0]: missing step "type"']),
        (_path({"type": "action", "action": "send_sms"}), ['paths.p[0]: unknown action "send_sms"']),
        (_path({"type": "action"}), ['paths.p[0]: an action step requires "action"']),
        (_path({"type": "action", "action": "send_template"}),
         ['paths.p[0]: send_template requires "template" (a name)']),
        (_path({"type": "action", "action": "send_media"}),
         ['paths.p[0]: send_media requires "media" {kind, link} or "asset"']),
        (_path({"type": "action", "action": "send_media", "media": {"kind": "image"}}),
         ["paths.p[0].media.link: required (a non-empty string)"]),
        (_path({"type": "set_attribute", "value": 1}),
         ['paths.p[0]: set_attribute requires "key" (a non-empty string)']),
        (_path({"type": "set_attribute", "key": "k"}), ['paths.p[0]: set_attribute requires "value"']),
        (_path({"type": "wait", "ms": "5"}), ['paths.p[0].ms: must be a non-negative number, got "5"']),
        (_path({"type": "delay", "sec": True}), ["paths.p[0].sec: must be a non-negative number, got true"]),
        (_path({"type": "delay", "sec": 1, "ms": 5}), ['paths.p[0]: give only one of "sec", "ms"']),
        (_path({"type": "wait_for_reply", "timeout_path": "nowhere", "seconds": 5}),
         ['paths.p[0].timeout_path: path "nowhere" does not exist']),
        (_path({"type": "wait_for_reply", "timeout_path": "p"}),
         ["paths.p[0].timeout_path: set without a timeout, so it can never be taken"]),
        (_path({"type": "wait_for_reply", "pattern": 5}), ["paths.p[0].pattern: must be a string"]),
        (_path({"type": "wait_for_reply", "pattern": "(?<=a)b"}),
         ['paths.p[0].pattern: invalid regex "(?<=a)b": invalid perl operator: (?<=']),
    ],
)
def test_each_problem_is_reported_at_its_location(graph: object, problems: list[str]) -> None:
    assert validate(graph) == problems


def test_a_graph_nested_too_deep_is_rejected_with_the_limit() -> None:
    deep: object = "x"
    for _ in range(10_000):
        deep = [deep]
    assert validate({"nodes": [], "paths": {"p": [{"type": "webhook", "data": deep}]}}) == [
        "graph: nested deeper than the limit of 64 levels"
    ]


def test_durations_are_exact_milliseconds() -> None:
    flow = parse_flow(_path({"type": "delay", "seconds": 0.0015}, {"type": "delay", "sec": 2.25},
                            {"type": "wait", "ms": 7}, {"type": "wait_for_reply", "timeout_seconds": 1.5}))
    assert [getattr(step, "ms", getattr(step, "timeout_ms", None)) for step in flow.paths["p"]] == [2, 2250, 7, 1500]


BUILDER_GRAPH: dict[str, Any] = {
    "name": "Bienvenida", "version": 7, "updated_by": "builder",
    "nodes": [{"id": "t1", "type": "trigger", "on": "message_in"},
              {"id": "x1", "type": "sticky_note", "text": "hola"},
              {"id": "t2", "type": "trigger", "on": "schedule"},
              {"id": "n1", "type": "intent", "map": {"greeting": "hi"}},
              {"id": "n2", "type": "intent", "map": {"greeting": "other"}}],
    "paths": {"hi": [{"type": "action", "action": "send_text", "text": "Hola"}],
              "other": [{"type": "action", "action": "send_text", "text": "Otro"}]},
}


def test_a_builder_graph_is_valid_with_warnings_for_the_nodes_it_ignores() -> None:
    flow = parse_flow(BUILDER_GRAPH)
    assert flow.problems == ()
    assert flow.warnings == ('nodes[1].type: node type "sticky_note" is not supported, ignored',
                             'nodes[2].on: trigger "schedule" is not supported, ignored')
    assert [node.id for node in flow.nodes] == ["n1", "n2"]  # the first intent node routes
    assert flow.name == "Bienvenida"


def test_unknown_step_types_stay_errors_in_a_builder_graph() -> None:
    graph = {**BUILDER_GRAPH, "paths": {**BUILDER_GRAPH["paths"], "hi": [{"type": "escalate"}]}}
    assert validate(graph) == ['paths.hi[0]: unknown step type "escalate"']


def test_re_prompt_and_control_fields_are_parsed() -> None:
    flow = parse_flow({"interrupt": [" Menú ", "INICIO"], "expire_after_minutes": 30, "paths": {"p": [
        {"type": "wait_for_reply", "pattern": "^si$", "no_match_text": "¿Sí?", "max_attempts": 2}]}})
    assert flow.problems == ()
    assert (flow.interrupt, flow.expire_after_min) == (("menu", "inicio"), 30.0)
    step = flow.paths["p"][0]
    assert (step.no_match_text, step.max_attempts) == ("¿Sí?", 2)  # type: ignore[union-attr]
