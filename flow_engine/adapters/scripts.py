"""The Lua scripts (adapters/lua/*.lua, each documenting its KEYS and ARGV) and the Redis client.

The client translates the error replies the engine acts on (its scripts' FENCED and NOSECRET, the
stream commands' NOGROUP, UNBLOCKED and BUSYGROUP) into the classes of `flow_engine.errors` where
Redis raises them, so no caller reads an error's text. Pipelines raise redis-py's own errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script

from flow_engine.errors import Fenced, GroupExists, RedisReply, SecretMissing, StreamGone

# redis-py types every reply as bytes | str whatever decode_responses says; callers know which.
RedisClient = Any

LUA = Path(__file__).resolve().parent / "lua"


class Scripts:
    """Every script, registered on one client (EVALSHA, loaded again after a Redis restart)."""

    def __init__(self, client: RedisClient) -> None:
        def load(name: str) -> Script:
            script: Script = client.register_script((LUA / f"{name}.lua").read_text())
            return script

        self.intake = load("intake")
        self.handoff = load("handoff")
        self.dead_letter = load("dead_letter")
        self.commit = load("commit")
        self.pop_due = load("pop_due")
        self.sweep = load("sweep")
        self.renew = load("renew")
        self.release = load("release")
        self.replay = load("replay")
        self.trim = load("trim")
        self.upgrade_wait = load("upgrade_wait")


# The first word of an error reply -> the engine's error.
REPLIES: dict[str, type[RedisReply]] = {
    "FENCED": Fenced,  # intake.lua, handoff.lua, dead_letter.lua: the bridge lease is another bridge's
    "NOSECRET": SecretMissing,  # pop_due.lua: the engine's secret key is missing
    "NOGROUP": StreamGone,  # XREADGROUP, XAUTOCLAIM, XACK: the stream or the group was deleted
    "UNBLOCKED": StreamGone,  # a blocked XREADGROUP whose stream was deleted
    "BUSYGROUP": GroupExists,  # XGROUP CREATE of a group that exists
}


def translated(exc: redis.ResponseError) -> RedisReply | None:
    """The engine's error for an error reply it acts on; None for any other."""
    kind = REPLIES.get(str(exc).split(" ", 1)[0])
    return None if kind is None else kind(*exc.args)


class Client(redis.Redis):
    """redis.Redis raising the engine's errors for the replies of REPLIES."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except redis.ResponseError as exc:
            mapped = translated(exc)
            if mapped is None:
                raise
            raise mapped from exc


def connect(url: str, *, decode: bool = True) -> RedisClient:
    """A client with timeouts, so an outage surfaces as an error to retry, never a hang."""
    return Client.from_url(
        url, decode_responses=decode, socket_timeout=10, socket_connect_timeout=5, health_check_interval=15
    )

