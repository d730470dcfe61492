"""FLOW_ENGINE_HANDOFF_TTL_MIN through the real processes: the timer loop releases a contact that no one
released (a durable timer on the contact's lane, like a delay), and its next message enters the flow."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from flow_engine.adapters.keys import HANDOFFS, Keys
from tests.devstack import Stack
from tests.runtime.conftest import new_org

TTL_MIN = 0.05  # 3 s


@pytest.fixture(scope="module")
def stack(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(redis_url, database_url, tmp_path_factory.mktemp("logs"),
              env={"FLOW_ENGINE_HANDOFF_TTL_MIN": str(TTL_MIN)})
    s.start()
    yield s
    s.stop()


def test_a_contact_nobody_releases_is_released_after_the_ttl(stack: Stack) -> None:
    org, phone = new_org(), "5215591000001"
    stack.load_flow(org, {"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "eco {{message.text}}"}, {"type": "handoff"}]}})
    wait_key = Keys("fe:wait", "").wait(org, "ch1", phone)
    stack.send(org, phone, "uno")
    stack.wait_until(lambda: stack.redis.exists(wait_key), 15, "the handoff")
    handed_at = time.monotonic()
    stack.send(org, phone, "dos")  # with the agent: ignored
    stack.wait_until(lambda: not stack.redis.exists(wait_key), 20, "the TTL release")
    assert time.monotonic() - handed_at > TTL_MIN * 60 - 0.5  # not before its time
    assert stack.redis.zcard(HANDOFFS) == 0
    stack.send(org, phone, "tres")
    stack.wait_outbox(org, 2)
    stack.settled()
    assert [e["text"] for e in stack.outbox(org)] == ["eco uno", "eco tres"]
    assert int(stack.redis.hget("fe:stats", "ignored:handoff") or 0) == 1
    assert json.loads(stack.redis.get(wait_key))[5] == "handoff"  # "tres" handed the contact over again
