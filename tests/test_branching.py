"""Branching and capture (SPEC §5.2): save_as, branch, goto, end, split, and their validation."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flow_engine.adapters.effects import WAIT_FIELDS, dump_wait, load_wait
from flow_engine.core.control import Control
from flow_engine.core.graph import parse_flow, validate
from flow_engine.core.interpreter import interpret
from flow_engine.core.outcome import Contact
from flow_engine.core.steps.conditions import TESTS
from flow_engine.core.steps.split import Split
from tests.conftest import EXAMPLE_FLOWS
from tests.test_properties import TEXTS, check_graph, message, play

PHONE = "5215512345678"


def _flow(**paths: list[dict[str, Any]]) -> dict[str, Any]:
    return {"nodes": [{"id": "n", "type": "intent", "map": {"default": "start"}}], "paths": paths}


def _send(text: str) -> dict[str, Any]:
    return {"type": "action", "action": "send_text", "text": text}


# --- save_as ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "reply", "saved"),
    [
        ("(?P<value>\\d+) personas", "somos 4 personas", "4"),  # the group named value
        ("(\\w+)@(\\w+)", "  ana@example ", "ana"),  # else the first group
        ("\\d", "  mesa para 2  ", "mesa para 2"),  # else the whole reply, trimmed
        (None, "  Ana María ", "Ana María"),
        ("(?P<other>x)?(?P<value>y)?", "z", "z"),  # groups that took no part: the whole reply
    ],
)
def test_save_as_keeps_the_value_group_else_the_first_group_else_the_whole_reply(
    pattern: str | None, reply: str, saved: str
) -> None:
    wait: dict[str, Any] = {"type": "wait_for_reply", "save_as": "answer"}
    if pattern is not None:
        wait["pattern"] = pattern
    flow = parse_flow(_flow(start=[wait, _send("got {{contact.attributes.answer}}")]))
    chat = play(flow, ["hola", reply])
    last = chat.outcomes[-1]
    assert [(w.key, w.value) for w in last.attributes] == [("answer", saved)]
    assert [m.content for m in last.outbox] == [f"got {saved}"]


def test_save_as_is_not_written_by_a_timeout_or_a_non_matching_reply() -> None:
    flow = parse_flow(_flow(start=[{"type": "wait_for_reply", "pattern": "\\d", "seconds": 5, "save_as": "n"},
                                   _send("after")]))
    chat = play(flow, ["hola", "no", None])
    assert [o.attributes for o in chat.outcomes] == [(), (), ()]
    assert [m.content for m in chat.outcomes[-1].outbox] == ["after"]


# --- branch, goto, end ----------------------------------------------------------------------------


def test_branch_takes_the_first_case_that_holds_else_default_else_the_next_step() -> None:
    branch = {"type": "branch", "cases": [{"has_number_gt": 10, "path": "big"}, {"has_number": True, "path": "small"}]}
    flow = parse_flow(_flow(start=[branch, _send("no number")], big=[_send("big")], small=[_send("small")]))
    assert [m.content for m in play(flow, ["somos 12"]).outcomes[0].outbox] == ["big"]
    assert [m.content for m in play(flow, ["somos 3"]).outcomes[0].outbox] == ["small"]
    assert [m.content for m in play(flow, ["nadie"]).outcomes[0].outbox] == ["no number"]
    with_default = parse_flow(_flow(start=[{**branch, "default": "other"}, _send("never")], big=[_send("big")],
                                    small=[_send("small")], other=[_send("other")]))
    assert [m.content for m in play(with_default, ["nadie"]).outcomes[0].outbox] == ["other"]


def test_branch_on_an_attribute_and_on_the_contact_name() -> None:
    flow = parse_flow(_flow(
        start=[{"type": "branch", "on": "{{contact.attributes.plan}}", "cases": [{"equals": "pro", "path": "pro"}]},
               {"type": "branch", "on": "{{contact.name}}", "cases": [{"is_empty": True, "path": "anon"}]},
               _send("named")],
        pro=[_send("pro")], anon=[_send("anon")]))
    outcome = interpret(flow, message("hola"), None, Contact(PHONE, "", {"plan": " PRO "}), 0)
    assert [m.content for m in outcome.outbox] == ["pro"]
    outcome = interpret(flow, message("hola", name=None), None, Contact(PHONE, "", {}), 0)
    assert [m.content for m in outcome.outbox] == ["anon"]
    outcome = interpret(flow, message("hola"), None, Contact(PHONE, "Ana", {}), 0)
    assert [m.content for m in outcome.outbox] == ["named"]


def test_message_text_in_a_branch_is_the_reply_that_resumed_the_run() -> None:
    flow = parse_flow(_flow(start=[{"type": "wait_for_reply"},
                                   {"type": "branch", "cases": [{"has_beginning": "si", "path": "yes"}]},
                                   _send("no")], yes=[_send("yes")]))
    chat = play(flow, ["si", "Sí, claro"])
    assert [m.content for m in chat.outcomes[-1].outbox] == ["yes"]


def test_goto_continues_at_the_first_step_and_end_completes_the_run() -> None:
    flow = parse_flow(_flow(start=[_send("a"), {"type": "goto", "path": "next"}, _send("never")],
                            next=[_send("b"), {"type": "end"}, _send("never")]))
    outcome = play(flow, ["hola"]).outcomes[0]
    assert [m.content for m in outcome.outbox] == ["a", "b"]
    assert outcome.run is not None and (outcome.run.status, outcome.run.last_step) == ("completed", "next:1")


def test_a_menu_loop_through_a_reply_wait_is_bounded_by_the_contact() -> None:
    flow = parse_flow(_flow(start=[_send("menu"), {"type": "wait_for_reply"},
                                   {"type": "branch", "cases": [{"equals": "salir", "path": "bye"}]},
                                   {"type": "goto", "path": "start"}], bye=[_send("bye")]))
    assert flow.problems == ()
    chat = play(flow, ["hola", "x", "y", "salir"])
    assert [[m.content for m in o.outbox] for o in chat.outcomes] == [["menu"], ["menu"], ["menu"], ["bye"]]


# --- split ----------------------------------------------------------------------------------------


def test_split_70_30_over_10000_runs_lands_within_2_percent_and_is_deterministic() -> None:
    split = Split((("a", 70.0), ("b", 30.0)))
    chosen = [split.choose(f"run-{n}", "start:0") for n in range(10_000)]
    assert abs(chosen.count("a") / 10_000 - 0.70) <= 0.02
    assert all(split.choose(f"run-{n}", "start:0") == chosen[n] for n in range(0, 10_000, 7))


def test_split_records_the_variant_in_the_run_context_and_replays_the_same() -> None:
    flow = parse_flow(_flow(start=[{"type": "split", "variants": [{"path": "a", "weight": 1}, {"path": "b",
                                                                                              "weight": 1}]}],
                            a=[_send("A"), {"type": "wait_for_reply"}, _send("A2")], b=[_send("B")]))
    seen = set()
    for n in range(40):
        first = interpret(flow, message("hola", n), None, Contact(PHONE), 0)
        again = interpret(flow, message("hola", n), None, Contact(PHONE), 0)
        assert first == again
        assert first.run is not None
        variant = first.run.context["variants"]["start:0"]
        assert [m.content for m in first.outbox] == [variant.upper()]
        seen.add(variant)
        if first.wait_after is not None:  # the variant stays in the run's context after the wait
            later = interpret(flow, message("ok", n + 100), first.wait_after, Contact(PHONE), 1)
            assert later.run is not None and later.run.context["variants"] == {"start:0": "a"}
    assert seen == {"a", "b"}


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paths", "problems"),
    [
        ({"menu": [_send("1"), _send("2"), _send("3"), _send("4"), {"type": "goto", "path": "menu"}]},
         ['paths.menu[4]: goto "menu" loops without waiting for the contact']),
        ({"a": [{"type": "branch", "cases": [{"has_text": True, "path": "b"}]}], "b": [{"type": "goto", "path": "a"}]},
         ['paths.a[0]: branch to "b" loops without waiting for the contact',
          'paths.b[0]: goto "a" loops without waiting for the contact']),
        ({"a": [{"type": "split", "variants": [{"path": "a", "weight": 1}]}]},
         ['paths.a[0]: split variant "a" loops without waiting for the contact']),
        ({"a": [{"type": "goto", "path": "nowhere"}]}, ['paths.a[0].path: path "nowhere" does not exist']),
        ({"a": [{"type": "branch", "cases": [{"has_words": "x", "path": "a"}]}]},
         ['paths.a[0].cases[0].has_words: unknown test "has_words"']),
        ({"a": [{"type": "branch", "cases": [{"has_number_between": [5, 1], "path": "a"}]}]},
         ["paths.a[0].cases[0].has_number_between: min 5 is above max 1"]),
        ({"a": [{"type": "branch", "cases": [{"has_number_lt": "3", "path": "a"}]}]},
         ['paths.a[0].cases[0].has_number_lt: must be a number, got "3"']),
        ({"a": [{"type": "branch", "cases": [{"has_email": "yes", "path": "a"}]}]},
         ['paths.a[0].cases[0].has_email: must be true, got "yes"']),
        ({"a": [{"type": "branch", "cases": [{"matches": "(a", "path": "a"}]}]},
         ['paths.a[0].cases[0].matches: invalid regex "(a": missing ): (a']),
        ({"a": [{"type": "branch", "cases": [{"has_text": True}], "default": "zz"}]},
         ['paths.a[0].cases[0].path: required (a path name)', 'paths.a[0].default: path "zz" does not exist']),
        ({"a": [{"type": "branch", "cases": [{"has_text": True, "equals": "x", "path": "a"}]}]},
         [f"paths.a[0].cases[0]: a case names exactly one test (one of {', '.join(TESTS)}), got 2"]),
        ({"a": [{"type": "split", "variants": [{"path": "a", "weight": 0}]}]},
         ["paths.a[0].variants[0].weight: must be a positive number, got 0"]),
        ({"a": [{"type": "wait_for_reply", "save_as": " "}]}, ['paths.a[0].save_as: must be a non-empty key, got " "']),
        ({"a": [{"type": "branch", "cases": "x"}]},
         ['paths.a[0]: branch requires "cases" (a list of {TEST: ARG, "path": P})']),
    ],
)
def test_validation_reports_each_problem_at_its_location(paths: dict[str, Any], problems: list[str]) -> None:
    assert validate({"nodes": [], "paths": paths}) == problems


def test_jumps_that_pass_a_pausing_step_are_not_loops() -> None:
    waits = [{"type": "wait", "seconds": 1}, {"type": "wait_for_reply"}]
    for pause in waits:
        assert validate({"paths": {"a": [pause, {"type": "goto", "path": "b"}],
                                   "b": [{"type": "goto", "path": "a"}]}}) == []
    # a branch with a default never falls through: what follows it is not on the loop
    assert validate({"paths": {"a": [{"type": "branch", "cases": [], "default": "b"}, {"type": "goto", "path": "a"}],
                               "b": [{"type": "wait_for_reply"}]}}) == []


def test_the_booking_example_is_valid() -> None:
    graph = json.loads((EXAMPLE_FLOWS / "restaurant_booking.json").read_text())
    assert validate(graph) == []


# --- properties -------------------------------------------------------------------------------------

NAMES = ["a", "b", "c", "menu"]
JUMPS = st.sampled_from([*NAMES, "zz"])
TEST_CASES = st.sampled_from([
    {"has_text": True}, {"equals": "si"}, {"has_any_word": ["uno", "1"]}, {"has_all_words": "mesa dos"},
    {"has_phrase": "para llevar"}, {"has_beginning": "quiero"}, {"matches": "^\\d+$"}, {"has_number": True},
    {"has_number_between": [1, 4]}, {"has_number_lt": 3}, {"has_number_lte": 3}, {"has_number_gt": 3},
    {"has_number_gte": 3}, {"has_number_eq": 3.5}, {"has_email": True}, {"has_phone": True},
    {"has_intent": "pricing"}, {"is_set": True}, {"is_empty": True}, {"nope": 1}, {"matches": "(("},
])


@st.composite
def branching_steps(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["send", "wait", "reply", "branch", "goto", "end", "split", "set"]))
    if kind == "send":
        return _send("{{message.text}}")
    if kind == "wait":
        return {"type": "wait", "seconds": draw(st.integers(0, 3))}
    if kind == "reply":
        return {"type": "wait_for_reply", "save_as": "x", "pattern": draw(st.sampled_from(["(?P<value>\\d+)", "."]))}
    if kind == "goto":
        return {"type": "goto", "path": draw(JUMPS)}
    if kind == "end":
        return {"type": "end"}
    if kind == "set":
        return {"type": "set_attribute", "key": "x", "value": "{{message.text}}"}
    if kind == "split":
        return {"type": "split", "variants": draw(st.lists(st.fixed_dictionaries(
            {"path": JUMPS, "weight": st.sampled_from([1, 2.5, 0, -1])}), min_size=1, max_size=3))}
    cases = draw(st.lists(st.builds(lambda case, path: {**case, "path": path}, TEST_CASES, JUMPS), max_size=3))
    step: dict[str, Any] = {"type": "branch", "cases": cases,
                            "on": draw(st.sampled_from(["{{message.text}}", "{{contact.attributes.x}}"]))}
    if draw(st.booleans()):
        step["default"] = draw(JUMPS)
    return step


@st.composite
def branching_graphs(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    return {"nodes": [{"type": "intent", "map": {"default": names[0]}}],
            "paths": {name: draw(st.lists(branching_steps(), max_size=5)) for name in names}}


BRANCHING = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@BRANCHING
@given(branching_graphs(), st.lists(TEXTS.filter(lambda t: len(t) < 500) | st.none(), min_size=1, max_size=6))
def test_random_branching_graphs_never_crash_and_accepted_ones_pause_or_end_within_the_step_limit(
    graph: dict[str, Any], moves: list[str | None]
) -> None:
    check_graph(copy.deepcopy(graph))
    flow = parse_flow(graph, flow_id="f", version=1)
    chat = play(flow, moves)  # never raises
    if not flow.valid:
        return
    for outcome in chat.outcomes:
        assert outcome.failure is None, outcome.failure
    # Without a jump cycle that never waits, one event runs at most every step of the graph once.
    steps = sum(len(path) for path in flow.paths.values())
    first = interpret(flow, message(moves[0] or "hola"), None, Contact(PHONE), 0,
                      control=Control.of(steps + 1, 1440, "", 50))
    assert first.failure is None and first.run is not None and first.run.status in ("running", "completed")


def test_a_wait_with_variants_is_stored_and_loaded_whole_and_one_without_as_before() -> None:
    flow = parse_flow(_flow(start=[{"type": "split", "variants": [{"path": "a", "weight": 1}]}],
                            a=[{"type": "wait_for_reply"}]))
    wait = interpret(flow, message("hola"), None, Contact(PHONE), 0).wait_after
    assert wait is not None and wait.variants == (("start:0", "a"),)
    assert load_wait(dump_wait(wait)) == wait
    assert json.loads(dump_wait(wait))[len(WAIT_FIELDS)] == {"start:0": "a"}
    assert json.loads(dump_wait(wait))[len(WAIT_FIELDS) + 1] == wait.trail == 3  # start, split, wait_for_reply
    plain = replace(wait, variants=(), trail=0)
    assert load_wait(dump_wait(plain)) == plain and len(json.loads(dump_wait(plain))) == len(WAIT_FIELDS)
    untraced = replace(wait, trail=0)  # a wait stored before trails: read as a trail of 0 entries
    assert load_wait(dump_wait(untraced)) == untraced and len(json.loads(dump_wait(untraced))) == len(WAIT_FIELDS) + 1
