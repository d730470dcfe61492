"""flow-engine runs list|show, stats, and the counts of `graph --stats`: what flows did, from the
runs' rows and trails (adapters/runs.py reads, core/stats.py and core/trail.py shape)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sqlalchemy import Engine

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
STATUSES = ("running", "completed", "failed", "expired", "interrupted")


def parse_since(value: str, now: datetime) -> datetime:
    """`30m`, `2h`, `7d` (ago), or an ISO 8601 date or time (UTC unless it says otherwise)."""
    ago = _AGO.match(value.strip())
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: float(ago.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a duration (30m, 2h, 7d) nor an ISO date or time",
                                 param_hint="--since") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _since(value: str | None) -> datetime | None:
    return None if value is None else parse_since(value, datetime.now(UTC))


@contextmanager
def _database() -> Iterator[Engine]:
    """The engine of DATABASE_URL with the run columns checked; one line on any database error."""
    from sqlalchemy.exc import SQLAlchemyError

    from flow_engine import settings
    from flow_engine.adapters import schema
    from flow_engine.adapters.db import make_engine

    try:
        url = settings.get().database_url
    except settings.SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    engine = make_engine(url)
    try:
        schema.require(engine, schema.RUNS)
        yield engine
    except schema.SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database at {schema.safe_url(engine)}: {schema.one_line(exc)}") from None
    finally:
        engine.dispose()


def _stamp(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@click.group()
def runs() -> None:
    """Flow runs: list them, show one's trail."""


@runs.command("list")
@click.option("--org", default=None, help="org_id")
@click.option("--contact", default=None, help="the contact's phone (wa_id)")
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--flow", default=None, help="a flow id, or a flow name (every version)")
@click.option("--since", default=None, help="started since: 30m, 2h, 7d, or an ISO date/time (UTC)")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="one JSON object per run")
def runs_list(org: str | None, contact: str | None, status: str | None, flow: str | None, since: str | None,
              limit: int, as_json: bool) -> None:
    """The newest runs first: id, status, last step, steps recorded, contact, flow, start time."""
    from flow_engine.adapters import runs as store

    with _database() as engine:
        chosen = store.RunFilter(org, store.flow_ids(engine, org, flow) if flow else None, contact, status,
                                 _since(since))
        rows = store.list_runs(engine, chosen, limit)
    for row in rows:
        if as_json:
            click.echo(json.dumps({key: _jsonable(value) for key, value in row.items()}, ensure_ascii=False))
        else:
            click.echo(f"{row['id']}  {row['status']:<11} {row['last_step'] or '-':<20} {row['trail_count']:>5} steps  "
                       f"{_stamp(row['created_at'])}  org {row['org_id']}  contact {row['contact']}  "
                       f"flow {row['flow_id']} v{row['flow_version']}")
    if not rows and not as_json:
        click.echo("no runs", err=True)


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="the row and its trail as one JSON object")
def runs_show(run_id: str, as_json: bool) -> None:
    """A run and its trail as a timeline: every step with its time, the branch case or variant taken,
    what resumed it, and how it ended."""
    from flow_engine.adapters import runs as store
    from flow_engine.core.trail import ordered, timeline

    with _database() as engine:
        row = store.get_run(engine, run_id)
    if row is None:
        raise click.ClickException(f"no run {run_id}")
    if as_json:
        shown = {key: _jsonable(value) for key, value in row.items() if key != "trail"}
        shown["trail"] = [{"n": n, **item} for n, item in ordered(row["trail"])]
        click.echo(json.dumps(shown, ensure_ascii=False))
        return
    for line in run_lines(row) + timeline(row["trail"], row["trail_count"]):
        click.echo(line)


def run_lines(row: dict[str, Any]) -> list[str]:
    """The header of `runs show`."""
    context = row["context"] if isinstance(row["context"], dict) else {}
    ended = context.get("ended")
    status = row["status"] + (f" ({ended})" if ended and ended != row["status"] else "")
    lines = [
        f"run      {row['id']}",
        f"status   {status} at {row['last_step'] or 'start'}",
        f"org      {row['org_id']}  channel {row['channel_id']}  contact {row['contact']}",
        f"flow     {row['flow_id']} v{row['flow_version']}  intent {context.get('intent', '-')}",
        f"started  {_stamp(row['created_at'])} UTC, last change {_stamp(row['updated_at'])} UTC, "
        f"{row['trail_count']} steps recorded",
    ]
    if context.get("error"):
        lines.append(f"error    {context['error']}")
    if context.get("variants"):
        lines.append("variants " + ", ".join(f"{where} → {path}" for where, path in context["variants"].items()))
    return [*lines, ""]


@click.command()
@click.option("--org", required=True, help="org_id")
@click.option("--flow", default=None, help="a flow id, or a flow name (every version; steps are matched by location)")
@click.option("--since", default=None, help="runs started since: 30m, 2h, 7d, or an ISO date/time (UTC)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.option("--explain", is_flag=True, help="print the database's plan of each query instead")
def stats(org: str, flow: str | None, since: str | None, as_json: bool, explain: bool) -> None:
    """Runs by status, completion rate, and per step how many runs reached it, went on from it, and
    stopped there (still waiting, completed, expired, failed, interrupted)."""
    from flow_engine.adapters import runs as store
    from flow_engine.core.stats import as_dict, table

    with _database() as engine:
        chosen = store.RunFilter(org, store.flow_ids(engine, org, flow) if flow else None, since=_since(since))
        if explain:
            for line in store.explain(engine, chosen):
                click.echo(line)
            return
        result = store.flow_stats(engine, chosen)
    if as_json:
        click.echo(json.dumps(as_dict(result), ensure_ascii=False))
        return
    for line in table(result):
        click.echo(line)


def graph_with_stats(flow: str, graph: Any | None, org: str, since: str | None) -> tuple[Any, Any]:
    """(graph, stats) for `graph FLOW --stats --org O`: FLOW is a flow file (`graph`, read by the
    caller) or, when no such file exists, a stored flow of the org (an id, or a name: its active or
    latest version). The runs counted are the org's runs of every stored flow whose graph is that
    one (one file may be stored as several versions)."""
    from flow_engine.adapters import runs as store

    with _database() as engine:
        if graph is None:
            graph = store.stored_graph(engine, org, flow)
            if graph is None:
                raise click.ClickException(f"{flow}: no such file, nor a flow id or name of org {org}")
        ids = store.flow_ids_of_graph(engine, org, graph)
        return graph, store.flow_stats(engine, store.RunFilter(org, ids, since=_since(since)))
