"""What every command module shares: the group that shows the engine's errors as one line, the
settings, and the check that Redis answers."""

from __future__ import annotations

from typing import Any

import click

from flow_engine import settings as settings_module
from flow_engine.errors import FlowEngineError


class EngineGroup(click.Group):
    """A command group that shows a FlowEngineError as `Error: <its text>` and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlowEngineError as exc:
            raise click.ClickException(str(exc)) from None


def settings() -> settings_module.Settings:
    """The process's settings (a bad one is shown as one line by EngineGroup)."""
    return settings_module.get()


def require_redis(url: str) -> None:
    """One line, and how to fix it, when Redis cannot be reached."""
    import redis

    from flow_engine.adapters.scripts import connect

    try:
        connect(url).ping()
    except redis.RedisError as exc:
        raise click.ClickException(
            f"Redis is not reachable at {url} ({exc}): start it with `redis-server --daemonize yes`, "
            "or `docker compose up -d redis`, or set REDIS_URL"
        ) from None


def redis_client(*, decode: bool = True) -> Any:
    """A client of REDIS_URL (`decode=False` for entries that may hold invalid UTF-8)."""
    from flow_engine.adapters.scripts import connect

    return connect(settings().redis_url, decode=decode)
