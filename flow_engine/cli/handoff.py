"""flow-engine handoff list | release: contacts with an agent (SPEC §5.3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from flow_engine.adapters.dlq import printable

if TYPE_CHECKING:
    from flow_engine.adapters.keys import Keys
    from flow_engine.adapters.scripts import RedisClient


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(ms: int) -> str:
    minutes = max(ms, 0) // 60_000
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def _connection() -> tuple[RedisClient, Keys]:
    """Redis and the key names, or one line saying what is wrong (a setting, Redis unreachable)."""
    import redis

    from flow_engine import settings as settings_module
    from flow_engine.adapters.keys import Keys
    from flow_engine.adapters.scripts import connect

    try:
        settings = settings_module.get()
    except settings_module.SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    client = connect(settings.redis_url)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis is not reachable at {settings.redis_url} ({exc})") from None
    return client, Keys.of(settings)


@click.group()
def handoff() -> None:
    """Contacts with an agent: the bot keeps quiet until they are released."""


@handoff.command("list")
@click.option("--org", default=None, help="only this org")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per contact")
def handoff_list(org: str | None, as_json: bool) -> None:
    """Who is with an agent and since when (longest first)."""
    from flow_engine.adapters.handoff import with_agent
    from flow_engine.clock import now_ms

    client, keys = _connection()
    found = with_agent(client, keys, org)
    now = now_ms()
    for item in found:
        if as_json:
            click.echo(json.dumps(item.as_dict(), ensure_ascii=False))
            continue
        queue = f"  queue {item.queue}" if item.queue else ""
        click.echo(printable(f"{item.org_id}  {item.channel_id}  {item.contact}  since {_iso(item.since_ms)} "
                             f"({_age(now - item.since_ms)}){queue}  released by {_iso(item.release_due_ms)}"))
    if not found and not as_json:
        click.echo("nobody is with an agent" + (f" in org {org}" if org else ""))


@handoff.command("release")
@click.option("--org", required=True, help="org_id")
@click.option("--channel", default="default", show_default=True, help="channel_id")
@click.option("--contact", required=True, help="the contact's phone (wa_id)")
def handoff_release(org: str, channel: str, contact: str) -> None:
    """Give the contact back to the bot: publishes a `control=release` entry on nf:incoming, handled in
    the contact's order (a message written before it is still the agent's)."""
    from flow_engine.adapters.handoff import is_with_agent, release

    client, keys = _connection()
    if not is_with_agent(client, keys, org, channel, contact):
        click.echo(printable(f"note: {contact} ({org}/{channel}) is not with an agent now; the release counts as "
                             "ignored (not-with-agent) unless a handoff comes first"), err=True)
    entry_id = release(client, org, channel, contact)
    click.echo(printable(f"nf:incoming {entry_id}: release of {contact} ({org}/{channel})"))
