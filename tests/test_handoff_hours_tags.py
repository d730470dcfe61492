"""SPEC §5.3 in the core: validation of handoff, business_hours and tags with located problems; the
control entry as an event; release and message racing, decided by their order; the hours' calendar
arithmetic around midnight and daylight-saving switches. Conversations are in fixtures/runs/."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flow_engine.core.conversation import OneFlow, handle
from flow_engine.core.graph import parse_flow, validate
from flow_engine.core.inbound import InvalidPayload, Message, Release, parse_entry
from flow_engine.core.mermaid import to_mermaid
from flow_engine.core.outcome import Contact, Outcome, WaitState
from flow_engine.core.steps.business_hours import BusinessHours, wall_instant_ms
from tests.conftest import EXAMPLE_FLOWS


def _path(*steps: object) -> dict[str, object]:
    return {"nodes": [], "paths": {"p": list(steps), "other": [{"type": "end"}]}}


def _hours(**fields: Any) -> dict[str, Any]:
    return {"type": "business_hours", "timezone": "Europe/Madrid", "hours": {"mon": "09:00-18:00"}, **fields}


@pytest.mark.parametrize(
    ("graph", "problems"),
    [
        (_path({"type": "handoff", "queue": 3}), ["paths.p[0].queue: must be a string, got 3"]),
        (_path({"type": "handoff", "note": ["x"]}), ['paths.p[0].note: must be a string, got ["x"]']),
        (_path({"type": "add_tag"}), ['paths.p[0].tag: add_tag requires "tag" (a non-empty string)']),
        (_path({"type": "remove_tag", "tag": "  "}),
         ['paths.p[0].tag: remove_tag requires "tag" (a non-empty string)']),
        (_path({"type": "add_tag", "tag": "x" * 257}), ["paths.p[0].tag: longer than 256 characters"]),
        (_path({"type": "business_hours", "hours": {}}),
         ['paths.p[0].timezone: business_hours requires "timezone" (IANA, e.g. "America/Mexico_City")']),
        (_path(_hours(timezone="Mars/Olympus")), ['paths.p[0].timezone: unknown time zone "Mars/Olympus"']),
        (_path(_hours(timezone="../../etc/passwd")), ['paths.p[0].timezone: unknown time zone "../../etc/passwd"']),
        (_path(_hours(hours="9-18")),
         ['paths.p[0].hours: business_hours requires "hours": {"mon": "09:00-18:00", ..., "sun": null}']),
        (_path(_hours(hours={"monday": "09:00-18:00", "tue": "10:00-12:00"})),
         ["paths.p[0].hours.monday: unknown day (one of mon, tue, wed, thu, fri, sat, sun)"]),
        (_path(_hours(hours={"mon": "9am-6pm"})),
         ['paths.p[0].hours.mon: must be a range "HH:MM-HH:MM", got "9am-6pm"']),
        (_path(_hours(hours={"mon": ["09:00-13:00", "15:00-25:00"]})),
         ['paths.p[0].hours.mon[1]: "15:00-25:00": not a time of day (00:00 to 23:59, 24:00 as an end)']),
        (_path(_hours(hours={"mon": "24:00-02:00"})),
         ['paths.p[0].hours.mon: "24:00-02:00": not a time of day (00:00 to 23:59, 24:00 as an end)']),
        (_path(_hours(hours={"mon": "09:00-09:00"})),
         ['paths.p[0].hours.mon: "09:00-09:00": opens and closes at the same time']),
        (_path(_hours(hours={"mon": 9})),
         ['paths.p[0].hours.mon: must be a range "HH:MM-HH:MM", a list of ranges, or null (closed)']),
        (_path(_hours(hours={"mon": None, "sun": []})),
         ["paths.p[0].hours: no day has opening hours, so the pause until the next opening never ends"]),
        (_path(_hours(closed_path="nowhere")), ['paths.p[0].closed_path: path "nowhere" does not exist']),
        ({"nodes": [], "paths": {"p": [_hours(closed_path="q")], "q": [{"type": "goto", "path": "p"}]}},
         ['paths.p[0]: jump to "q" loops without waiting for the contact',
          'paths.q[0]: goto "p" loops without waiting for the contact']),
    ],
)
def test_invalid_steps_are_reported_with_their_location(graph: Any, problems: list[str]) -> None:
    assert validate(graph) == problems


def test_valid_forms_of_the_new_steps() -> None:
    assert validate(_path(
        {"type": "handoff"}, {"type": "handoff", "queue": "ventas", "note": "{{contact.name}}"},
        {"type": "add_tag", "tag": "vip"}, {"type": "remove_tag", "tag": "lead-{{message.text}}"},
        _hours(hours={"mon": ["09:00-13:00", "15:00-19:00"], "fri": "22:00-02:00", "sat": "00:00-24:00",
                      "sun": None}),
        _hours(hours={"mon": None}, closed_path="other"),  # always closed, but it has somewhere to go
    )) == []


def test_the_example_flow_with_handoff_hours_and_tags_is_valid() -> None:
    graph = json.loads((EXAMPLE_FLOWS / "support_desk.json").read_text())
    assert validate(graph) == []
    text = json.dumps(graph)
    for needle in ('"handoff"', '"business_hours"', '"add_tag"', '"remove_tag"', '"closed_path"'):
        assert needle in text


def test_mermaid_draws_business_hours_as_a_decision_and_handoff_as_an_end() -> None:
    flow = parse_flow({"nodes": [], "paths": {"p": [_hours(closed_path="q"), {"type": "handoff", "queue": "v"}],
                                              "q": [{"type": "add_tag", "tag": "fuera"}]}})
    lines = to_mermaid(flow).splitlines()
    assert '  p_p_0{"business hours (Europe/Madrid)"}' in lines
    assert '  p_p_0 -->|"closed"| p_q_0' in lines
    assert "  p_p_0 -->|open| p_p_1" in lines
    assert '  p_p_1["hand off to v"]' in lines and "  p_p_1 --> end_p_p_1((end))" in lines
    assert '  p_q_0["add tag fuera"]' in lines
    pausing = parse_flow({"nodes": [], "paths": {"p": [_hours(), {"type": "end"}]}})
    assert '  p_p_0[/"business hours (Europe/Madrid)"/]' in to_mermaid(pausing).splitlines()  # until it opens


# -- the control entry ----------------------------------------------------------------------------------


def test_a_control_entry_is_a_release_event_of_its_contact() -> None:
    events = parse_entry("5-0", {"org_id": "acme", "channel_id": "ch1", "control": "release", "contact": "521"})
    assert events == [Release("5-0/0", "acme", "ch1", "521")]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"org_id": "acme", "channel_id": "c", "control": "pause", "contact": "521"},
         'control must be "release", got "pause"'),
        ({"org_id": "acme", "channel_id": "c", "control": "release"}, "contact must be a non-empty string"),
        ({"channel_id": "c", "control": "release", "contact": "521"}, "a control entry needs org_id"),
        ({"org_id": "acme", "channel_id": "c", "control": "release", "contact": "5\x1b21"},
         "contact holds a control character or a lone surrogate"),
    ],
)
def test_a_bad_control_entry_is_an_invalid_payload(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidPayload) as raised:
        parse_entry("5-0", fields)
    assert str(raised.value) == reason


# -- release and message racing: the order decides -----------------------------------------------------

FLOW = parse_flow({"nodes": [], "paths": {"path_default": [
    {"type": "action", "action": "send_text", "text": "eco {{message.text}}"}, {"type": "handoff"}]}},
    flow_id="f1", version=1)


def _play(events: list[Message | Release]) -> list[Outcome]:
    wait: WaitState | None = None
    outcomes: list[Outcome] = []
    for event in events:
        for outcome in handle(event, wait, [], Contact("521"), 1_000, OneFlow(FLOW)):
            outcomes.append(outcome)
            wait = outcome.wait_after
    return outcomes


def _msg(n: int, text: str) -> Message:
    return Message(f"{n}-0/0", "acme", "ch1", "521", text)


RELEASE = Release("3-0/0", "acme", "ch1", "521")


def test_a_release_written_before_the_message_gives_the_message_to_the_bot() -> None:
    outcomes = _play([_msg(1, "hola"), RELEASE, _msg(4, "otra")])
    assert [o.outbox[0].content if o.outbox else o.ignored for o in outcomes] == ["eco hola", None, "eco otra"]
    assert outcomes[1].released_from_agent and outcomes[2].handed_off


def test_a_message_written_before_the_release_is_still_the_agents() -> None:
    outcomes = _play([_msg(1, "hola"), _msg(2, "otra"), RELEASE])
    assert [o.outbox[0].content if o.outbox else o.ignored for o in outcomes] == ["eco hola", "handoff", None]
    assert outcomes[2].wait_after is None  # released: the next message enters the flow


def test_the_release_cancels_the_ttl_timer_of_the_handoff() -> None:
    first, release = _play([_msg(1, "hola"), RELEASE])
    assert release.timers_cancel == first.timers_add and first.timers_add[0].reason == "handoff"
    assert first.timers_add[0].due_ms == 1_000 + 1440 * 60_000


# -- the calendar ---------------------------------------------------------------------------------------


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _week(**days: list[tuple[int, int]]) -> tuple[tuple[tuple[int, int], ...], ...]:
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return tuple(tuple(days.get(name, [])) for name in names)


def test_a_wall_time_in_the_spring_gap_is_the_end_of_the_gap_and_a_repeated_one_its_first_pass() -> None:
    madrid = ZoneInfo("Europe/Madrid")
    assert wall_instant_ms(datetime(2026, 3, 29).date(), 150, madrid) == _ms("2026-03-29T03:00:00+02:00")
    assert wall_instant_ms(datetime(2026, 3, 29).date(), 180, madrid) == _ms("2026-03-29T03:00:00+02:00")
    assert wall_instant_ms(datetime(2026, 10, 25).date(), 150, madrid) == _ms("2026-10-25T02:30:00+02:00")
    assert wall_instant_ms(datetime(2026, 10, 25).date(), 540, madrid) == _ms("2026-10-25T09:00:00+01:00")


@pytest.mark.parametrize(
    ("at", "open_"),
    [
        ("2026-12-11T21:59:59-06:00", False),  # Friday, before its 22:00-02:00 range
        ("2026-12-11T22:00:00-06:00", True),
        ("2026-12-12T01:59:59-06:00", True),  # Saturday: Friday's range still
        ("2026-12-12T02:00:00-06:00", False),
        ("2026-12-12T23:30:00-06:00", False),  # Saturday night: Saturday has no range
        ("2026-12-13T12:00:00-06:00", True),  # Sunday all day (00:00-24:00)
        ("2026-12-13T23:59:59-06:00", True),
        ("2026-12-14T00:00:00-06:00", False),
    ],
)
def test_open_is_read_on_the_wall_clock_across_midnight(at: str, open_: bool) -> None:
    hours = BusinessHours("America/Mexico_City", _week(fri=[(1320, 120)], sun=[(0, 1440)]), None,
                          ZoneInfo("America/Mexico_City"))
    assert hours.is_open(_ms(at)) is open_
