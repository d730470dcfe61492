"""The previous engine's wait values and timers, read as this engine's (no Redis needed)."""

from __future__ import annotations

import json

from flow_engine.adapters.effects import dump_wait
from flow_engine.adapters.legacy import is_legacy_wait, parse_timer, wait_of
from flow_engine.core.graph import parse_flow

FLOW = parse_flow({"nodes": [], "paths": {"p": [
    {"type": "action", "action": "send_text", "text": "a"},
    {"type": "delay", "seconds": 5},
    {"type": "wait_for_reply", "pattern": "si", "timeout_seconds": 60, "timeout_path": "late"},
    {"type": "action", "action": "send_text", "text": "b"}],
    "late": [{"type": "action", "action": "send_text", "text": "c"}]}}, flow_id="f1", version=7)
WHO = ("org", "ch", "521")


def old_wait(index: int, token: str = "tok") -> str:
    return json.dumps({"path": "p", "index": index, "pattern": "si", "resume_token": token, "org_id": "org",
                       "channel_id": "ch", "contact_phone": "521", "timeout_path": "late"})


def test_an_old_wait_continues_on_the_active_flow_at_its_wait_step() -> None:
    wait = wait_of(old_wait(2), WHO, FLOW)
    assert wait is not None
    assert (wait.flow_id, wait.flow_version, wait.path, wait.index, wait.kind, wait.token, wait.due_ms) == (
        "f1", 7, "p", 2, "reply", "tok", None)
    assert wait_of(old_wait(3), WHO, FLOW) == wait  # an index past the wait step means the same wait
    assert wait_of(old_wait(2), WHO, FLOW, due_ms=5).due_ms == 5  # type: ignore[union-attr]


def test_an_old_wait_without_a_flow_or_path_is_dropped() -> None:
    assert wait_of(old_wait(2), WHO, None) is None
    assert wait_of(json.dumps({"path": "gone", "index": 0}), WHO, FLOW) is None
    assert wait_of("{not json", WHO, FLOW) is None


def test_old_and_current_waits_are_told_apart() -> None:
    assert is_legacy_wait(old_wait(2))
    current = wait_of(old_wait(2), WHO, FLOW)
    assert current is not None and not is_legacy_wait(dump_wait(current))


def test_an_old_timer_is_read_in_milliseconds_with_its_message_text() -> None:
    payload = json.dumps({"entry": [{"changes": [{"value": {"messages": [
        {"from": "521", "id": "w1", "type": "text", "text": {"body": "quiero info"}}]}}]}]})
    member = json.dumps({"payload": payload, "org_id": "org", "contact_phone": "521",
                         "engine_resume": json.dumps({"path": "p", "index": 2})})
    timer = parse_timer(member, 1_764_072_000)
    assert timer is not None
    assert (timer.due_ms, timer.org_id, timer.channel_id, timer.contact, timer.token, timer.path, timer.index,
            timer.text) == (1_764_072_000_000, "org", "wa_main", "521", None, "p", 2, "quiero info")
    assert parse_timer('["delay","t","o","c","5"]', 1) is None  # this engine's own format
