"""Redis error replies the engine acts on arrive as the engine's error classes, raised by the client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from flow_engine.adapters.keys import INCOMING
from flow_engine.adapters.scripts import connect
from flow_engine.errors import Fenced, FlowEngineError, GroupExists, SecretMissing, StreamGone


@pytest.fixture()
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = connect(redis_url)
    c.delete(INCOMING)
    yield c
    c.close()


def test_creating_an_existing_group_raises_group_exists(client: redis.Redis) -> None:
    client.xgroup_create(INCOMING, "g", id="0", mkstream=True)
    with pytest.raises(GroupExists):
        client.xgroup_create(INCOMING, "g", id="0", mkstream=True)


def test_reading_a_deleted_stream_raises_stream_gone(client: redis.Redis) -> None:
    with pytest.raises(StreamGone):
        client.xreadgroup("g", "c", {INCOMING: ">"}, count=1)


@pytest.mark.parametrize(("reply", "kind"), [("FENCED bridge lease lost", Fenced),
                                             ("NOSECRET the engine secret is missing", SecretMissing)])
def test_script_error_replies_raise_the_engine_errors(client: redis.Redis, reply: str, kind: type) -> None:
    with pytest.raises(kind, match=reply.split(" ", 1)[1]) as raised:
        client.eval(f"return redis.error_reply('{reply}')", 0)
    assert isinstance(raised.value, FlowEngineError) and isinstance(raised.value, redis.ResponseError)


def test_other_error_replies_stay_redis_errors(client: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError) as raised:
        client.eval("return redis.error_reply('WRONGTYPE no')", 0)
    assert not isinstance(raised.value, FlowEngineError)
