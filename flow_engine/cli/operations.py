"""Commands for operators: status, health, the DLQ, and upgrading the database and Redis state."""

from __future__ import annotations

import json
import sys

import click

from flow_engine.cli.common import redis_client, require_redis, settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.option("--no-workers", is_flag=True, help="do not ping the Celery workers")
def status(as_json: bool, no_workers: bool) -> None:
    """Stream lag, pending entries, lanes, timers, waits, DLQ and live workers."""
    from flow_engine import ops

    conf = settings()
    require_redis(conf.redis_url)
    state = ops.status(conf, redis_client(), None if no_workers else ops.live_workers())
    if as_json:
        click.echo(json.dumps(state.as_dict()))
        return
    for name, value in ops.status_rows(state, conf.group):
        click.echo(f"{name:<16} {value}")


@click.command()
@click.option("--check", "checks", multiple=True, type=click.Choice(["redis", "db", "bridge", "worker"]),
              help="what to check (default: redis and db)")
def health(checks: tuple[str, ...]) -> None:
    """Exit 0 when healthy, 1 otherwise (for container healthchecks)."""
    from flow_engine import ops

    results = ops.check(settings(), checks or ("redis", "db"))
    problems = [f"{name}: {problem}" for name, problem in results if problem]
    if problems:
        click.echo("unhealthy: " + "; ".join(problems), err=True)
        sys.exit(1)
    click.echo("ok: " + ", ".join(name for name, _ in results))


@click.group()
def dlq() -> None:
    """The dead-letter queue nf:incoming:dlq."""


@dlq.command("list")
@click.option("--limit", default=20, show_default=True, help="entries to show, oldest first")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per entry")
def dlq_list(limit: int, as_json: bool) -> None:
    """Show DLQ entries: id, error, detail, where they came from."""
    from flow_engine import ops

    for entry_id, fields in ops.dlq_entries(redis_client(decode=False), limit):
        click.echo(ops.dlq_json(entry_id, fields) if as_json else ops.dlq_line(entry_id, fields))


@dlq.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="replay every entry")
def dlq_replay(ids: tuple[str, ...], replay_all: bool) -> None:
    """Re-inject entries into nf:incoming (each once) and remove them from the DLQ."""
    from flow_engine import ops

    if bool(ids) == replay_all:
        raise click.UsageError("give DLQ entry ids, or --all")
    client = redis_client(decode=False)  # entries may hold invalid UTF-8: replay them as they are
    chosen = [entry_id for entry_id, _fields in ops.dlq_entries(client)] if replay_all else list(ids)
    with click.progressbar(ops.dlq_replay(client, chosen), length=len(chosen), label="replaying",
                           file=sys.stderr, hidden=len(chosen) < 20) as progress:
        missing = [dlq_id for dlq_id, new_id in progress if new_id is None]
    click.echo(f"replayed {len(chosen) - len(missing)} entries into nf:incoming")
    if missing:
        raise click.ClickException(f"not in the DLQ (replayed or purged already): {', '.join(missing)}")


@dlq.command("purge")
@click.option("--yes", is_flag=True, help="do not ask")
def dlq_purge(yes: bool) -> None:
    """Delete every DLQ entry."""
    from flow_engine import ops
    from flow_engine.adapters.keys import DLQ

    client = redis_client()
    if not yes:
        click.confirm(f"delete {client.xlen(DLQ)} DLQ entries?", abort=True)
    click.echo(f"purged {ops.dlq_purge(client)} entries")


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the tables at DATABASE_URL (Alembic)."""
    from flow_engine import ops

    click.echo(ops.migrate(settings().database_url, revision))


@click.group()
def state() -> None:
    """Redis state (waits and timers)."""


@state.command("migrate")
@click.option("--dry-run", is_flag=True, help="only say what would be converted")
def state_migrate(dry_run: bool) -> None:
    """Convert the previous engine's wait values and timers into this engine's (once; safe to repeat)."""
    from flow_engine.adapters import legacy
    from flow_engine.adapters.keys import Keys

    conf = settings()
    require_redis(conf.redis_url)
    report = legacy.convert_with_database(redis_client(), Keys.of(conf), conf.database_url, dry_run=dry_run)
    for line in report.lines():
        click.echo(("(dry run) " if dry_run else "") + line)


@click.group()
def waits() -> None:
    """Wait state (runs paused for a reply or in a delay)."""


@waits.command("upgrade")
def waits_upgrade() -> None:
    """Give waits stored by an engine from before waits expired their expiry (once, after upgrading)."""
    from flow_engine.adapters.keys import Keys
    from flow_engine.adapters.scripts import Scripts
    from flow_engine.adapters.upgrade import upgrade_waits
    from flow_engine.clock import now_ms

    conf = settings()
    require_redis(conf.redis_url)
    client = redis_client()
    seen, upgraded = upgrade_waits(client, Scripts(client), Keys.of(conf), conf.run_expire_min * 60_000, now_ms())
    click.echo(f"{seen} waits, {upgraded} given an expiry in {conf.run_expire_min} min")


COMMANDS = (status, health, dlq, db, state, waits)
