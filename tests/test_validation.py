"""`flow-engine validate` and parse_flow: every problem of a graph, each with its location."""

from __future__ import annotations

import json

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
        ({"nodes": [{"type": "menu"}], "paths": {}}, ['nodes[0].type: unknown node type "menu"']),
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
