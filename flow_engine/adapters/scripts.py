"""The Lua scripts (adapters/lua/*.lua, each documenting its KEYS and ARGV) and the Redis client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script

# redis-py types every reply as bytes | str whatever decode_responses says; callers know which.
RedisClient = Any

LUA = Path(__file__).resolve().parent / "lua"


class Scripts:
    """Every script, registered on one client (EVALSHA, loaded again after a Redis restart)."""

    def __init__(self, client: RedisClient) -> None:
        def load(name: str) -> Script:
            script: Script = client.register_script((LUA / f"{name}.lua").read_text())
            return script

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


def connect(url: str, *, decode: bool = True) -> RedisClient:
    """A client with timeouts, so an outage surfaces as an error to retry, never a hang."""
    return redis.Redis.from_url(
        url, decode_responses=decode, socket_timeout=10, socket_connect_timeout=5, health_check_interval=15
    )

