"""flow-engine: the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from flow_engine.adapters.dlq import printable, printable_json
from flow_engine.cli_handoff import handoff
from flow_engine.cli_runs import runs, stats
from flow_engine.core.control import Control
from flow_engine.core.graph import Flow, parse_flow
from flow_engine.core.outcome import AttributeWrite, Contact, Jumped, OutboxMessage, TagWrite, WebhookEvent
from flow_engine.core.simulator import Happening, Simulator, effect_lines


def load_graph(path: str) -> Any:
    """A flow file's JSON, or a one-line error naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise click.ClickException(f"{path}: not valid JSON: {exc}") from None


@click.group()
def main() -> None:
    """Flow Engine: runs WhatsApp chat-automation flows on Celery and Redis."""


main.add_command(handoff)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Check a flow graph; print every problem with its location (exit 1), or `ok`. Parts that are
    ignored at run time (nodes of other types than intent and trigger) are printed as warnings."""
    flow = parse_flow(load_graph(file))
    for problem in flow.problems:
        click.echo(problem)
    for warning in flow.warnings:
        click.echo(f"warning: {warning}")
    if flow.problems:
        sys.exit(1)
    click.echo("ok")


_IGNORED = {
    "no-match": "ignored: the reply does not match the pattern",
    "stale-timer": "timer no longer current",
    "handoff": "ignored: the contact is with an agent",
    "not-with-agent": "ignored: the contact is not with an agent",
}


def _transcript(happening: Happening, who: str) -> list[str]:
    """The effects of one event as a readable chat transcript."""
    stamp = f"[{happening.at_ms / 1000:7.3f}s]"
    pad = " " * len(stamp)
    event, outcome = happening.event, happening.outcome
    if hasattr(event, "text"):
        lines = [f"{stamp} {who} > {event.text}" + ("   (held until now)" if outcome.released else "")]
    elif not hasattr(event, "reason"):
        lines = [f"{stamp} ⇄ release (the agent is done)"]
    elif event.reason == "handoff":
        lines = [f"{stamp} ⏰ the handoff's time is up"]
    else:
        lines = [f"{stamp} ⏰ {'the wait expires' if event.reason == 'expire' else f'{event.reason} is due'}"]
    if outcome.ended is not None:
        lines.append(f"{pad} ■ run {outcome.ended.status}")
    for effect in outcome.effects:
        if isinstance(effect, OutboxMessage):
            shown = effect.content if effect.type == "text" else json.dumps(effect.content, ensure_ascii=False)
            lines.append(f"{pad} bot > {shown}" if effect.type == "text" else f"{pad} bot > [{effect.type}] {shown}")
        elif isinstance(effect, WebhookEvent):
            kind = "handoff" if effect.type == "flow.handoff" else "webhook"
            lines.append(f"{pad} → {kind} {json.dumps(effect.body['data'], ensure_ascii=False)}")
        elif isinstance(effect, TagWrite):
            lines.append(f"{pad} ✎ tag {'+' if effect.present else '-'}{effect.tag}")
        elif isinstance(effect, AttributeWrite):
            lines.append(f"{pad} ✎ {effect.key} = {json.dumps(effect.value, ensure_ascii=False)}")
        elif isinstance(effect, Jumped):
            lines.append(f"{pad} ↪ {effect.step} {effect.via} → {effect.path}")
    wait = outcome.wait_after
    if outcome.wait_changed and wait is not None:
        due = "" if wait.due_ms is None else f" until {(wait.due_ms - happening.start_ms) / 1000:.3f}s"
        if wait.due_ms is not None and wait.kind != "reply" and wait.due_ms - happening.start_ms >= 3_600_000:
            from datetime import UTC, datetime  # a long pause (business hours): when, on the calendar

            due += datetime.fromtimestamp(wait.due_ms / 1000, UTC).strftime(" (%Y-%m-%d %H:%M:%S UTC)")
        waiting = {"reply": "waiting for a reply", "delay": "waiting for the delay", "handoff": "with an agent"}
        lines.append(f"{pad} … {waiting[wait.kind]}{due}")
    if outcome.released_from_agent:
        lines.append(f"{pad} (back with the bot)")
    if outcome.ignored:
        lines.append(f"{pad} ({_IGNORED.get(outcome.ignored, outcome.ignored)})")
    if outcome.hold:
        lines.append(f"{pad} (held: the run is in a delay; handled when it waits for a reply or ends)")
    if outcome.failure is not None and outcome.run is None:
        lines.append(f"{pad} (to the DLQ, {outcome.failure.code}: {outcome.failure.detail})")
    if outcome.run is not None and outcome.run.status != "running":
        error = outcome.run.context.get("error")
        lines.append(f"{pad} ■ run {outcome.run.status}" + (f": {error}" if error else ""))
    return lines


def _start_ms(start: str | None) -> int:
    """`--start`: an ISO 8601 time with its offset (or `Z`), as epoch ms; default now."""
    from datetime import datetime

    if start is None:
        from flow_engine.clock import now_ms

        return now_ms()
    try:
        moment = datetime.fromisoformat(start.replace("Z", "+00:00") if start.endswith("Z") else start)
    except ValueError:
        raise click.BadParameter(f"{start!r} is not an ISO time such as 2026-12-07T10:30:00-06:00",
                                 param_hint="--start") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{start!r} needs its UTC offset, e.g. 2026-12-07T10:30:00-06:00",
                                 param_hint="--start")
    return int(moment.timestamp() * 1000)


def _attribute(value: str) -> tuple[str, Any]:
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--attr")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


@main.command()
@click.argument("flow_file", metavar="FLOW.json", type=click.Path(dir_okay=False))
@click.argument("steps", metavar="STEP...", nargs=-1, required=True)
@click.option("--org", default="sim", show_default=True, help="org_id of the simulated events")
@click.option("--channel", default="sim", show_default=True, help="channel_id of the simulated events")
@click.option("--contact", "phone", default="5215550000000", show_default=True, help="the contact's phone")
@click.option("--name", default="", help="the contact's name")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="a contact attribute (JSON or text)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per effect")
@click.option("--start", "start", default=None, metavar="ISO-TIME",
              help="where the virtual clock starts, e.g. 2026-12-07T10:30:00-06:00 (default: now)")
def simulate(
    flow_file: str, steps: tuple[str, ...], org: str, channel: str, phone: str, name: str,
    attrs: tuple[str, ...], as_json: bool, start: str | None,
) -> None:
    """Play a conversation against a flow: STEP is say:TEXT, wait:SECONDS or release (the agent is done)."""
    flow: Flow = parse_flow(load_graph(flow_file), flow_id=Path(flow_file).stem, version=1)
    if flow.problems:
        raise click.ClickException(f"{flow_file} is not a valid flow:\n" + "\n".join(flow.problems))
    attributes = dict(_attribute(a) for a in attrs)
    settings = _settings()  # conversation control as the engine would apply it (FLOW_ENGINE_MAX_STEPS, ...)
    control = Control.of(settings.max_steps, settings.run_expire_min, settings.interrupt_words, settings.max_held,
                         settings.handoff_ttl_min)
    sim = Simulator(flow, org_id=org, channel_id=channel, contact=Contact(phone, name, attributes), control=control,
                    start_ms=_start_ms(start))
    for step in steps:
        verb, _, arg = step.partition(":")
        if verb == "say":
            happenings = sim.say(arg)
        elif verb == "release":
            happenings = sim.release()
        elif verb == "wait":
            try:
                seconds = float(arg)
            except ValueError:
                raise click.BadParameter(f"{step!r}: wait needs seconds, e.g. wait:2.5", param_hint="STEP") from None
            if seconds < 0:
                raise click.BadParameter(f"{step!r}: seconds must not be negative", param_hint="STEP")
            happenings = sim.advance(seconds)
        else:
            raise click.BadParameter(f"{step!r} is neither say:TEXT, wait:SECONDS nor release", param_hint="STEP")
        for happening in happenings:
            if as_json:
                for effect in effect_lines(happening):
                    click.echo(json.dumps(effect, ensure_ascii=False))
            else:
                for line in _transcript(happening, name or phone):
                    click.echo(line)


# -- runtime and dev commands -------------------------------------------------------------------------


def _settings() -> Any:
    from flow_engine import settings as settings_module

    try:
        return settings_module.get()
    except settings_module.SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
def bridge() -> None:
    """Run the bridge: nf:incoming (consumer group) -> lanes -> Celery workers."""
    from flow_engine.processes import run_bridge

    run_bridge()


@main.command()
def scheduler() -> None:
    """Run the timer loop: due delays and reply timeouts back into nf:incoming."""
    from flow_engine.processes import run_scheduler

    run_scheduler()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the tables at DATABASE_URL (Alembic)."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from flow_engine.adapters.migrate import upgrade

    url = _settings().database_url
    try:
        upgrade(url, revision)
    except (SQLAlchemyError, CommandError) as exc:
        raise click.ClickException(f"DATABASE_URL: cannot migrate: {str(exc).splitlines()[0]}") from None
    click.echo(f"database at {_safe_url(url)} is at revision {revision}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.group()
def state() -> None:
    """Redis state (waits and timers)."""


@state.command("migrate")
@click.option("--dry-run", is_flag=True, help="only say what would be converted")
def state_migrate(dry_run: bool) -> None:
    """Convert the previous engine's wait values and timers into this engine's (once; safe to repeat)."""
    from flow_engine.adapters import legacy, schema
    from flow_engine.adapters.keys import Keys
    from flow_engine.adapters.scripts import connect

    conf = _settings()
    _require_redis(conf.redis_url)
    try:
        report = legacy.convert_with_database(connect(conf.redis_url), Keys.of(conf), conf.database_url,
                                              dry_run=dry_run)
    except schema.SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(("(dry run) " if dry_run else "") + line)


@main.group()
def flows() -> None:
    """Flows stored in the database."""


@flows.command("load")
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--org", required=True, help="org_id the flow belongs to")
@click.option("--name", default=None, help="flow name (default: the graph's name, else the file name)")
@click.option("--activate", is_flag=True, help="make it the org's active flow")
@click.option("--if-changed", is_flag=True, help="keep the latest version when it is the same graph")
def flows_load(files: tuple[str, ...], org: str, name: str | None, activate: bool, if_changed: bool) -> None:
    """Validate each FILE and store it as a new version of the org's flow."""
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError

    from flow_engine.adapters import schema
    from flow_engine.adapters.db import make_engine
    from flow_engine.adapters.store import store_flow

    graphs = []
    for file in files:  # all or nothing: every file is checked before any is stored
        graph = load_graph(file)
        if not isinstance(graph, dict):
            raise click.ClickException(f"{file}: a flow is a JSON object, got {type(graph).__name__}")
        problems = parse_flow(graph).problems
        if problems:
            raise click.ClickException(f"{file} is not a valid flow:\n" + "\n".join(problems))
        graphs.append((file, graph))
    engine = make_engine(_settings().database_url)
    try:
        schema.require(engine, schema.FLOWS)
    except schema.SchemaError as exc:
        engine.dispose()
        raise click.ClickException(str(exc)) from None
    try:
        with click.progressbar(graphs, label="storing flows", file=sys.stderr,
                               hidden=len(graphs) < 10) as progress:
            for file, graph in progress:
                flow_name = name or graph.get("name") or Path(file).stem
                flow_id, version, stored = store_flow(engine, org, graph, name=flow_name, activate=activate,
                                                      created_by="cli", if_changed=if_changed)
                state = "active" if activate else "draft"
                done = "stored" if stored else "unchanged"
                click.echo(f"{file}: flow {flow_id} ({flow_name!r} v{version}) {done} for org {org}, {state}")
    except IntegrityError as exc:
        # The platform's flows.org_id references organizations: an org it does not know is refused.
        reason = schema.one_line(exc)
        raise click.ClickException(f"org {org!r}: the database refused the flow ({reason}); "
                                   "is the org in the platform's organizations table?") from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database at {schema.safe_url(engine)}: cannot store the flow: "
                                   f"{schema.one_line(exc)}") from None
    finally:
        engine.dispose()


@main.command()
@click.argument("text")
@click.option("--org", required=True, help="org_id")
@click.option("--channel", default="default", show_default=True, help="channel_id")
@click.option("--from", "phone", required=True, help="the contact's phone (wa_id)")
@click.option("--name", default="", help="the contact's WhatsApp profile name")
def send(text: str, org: str, channel: str, phone: str, name: str) -> None:
    """XADD a WhatsApp-shaped text message from PHONE to nf:incoming."""
    import time
    import uuid

    from flow_engine.adapters.keys import INCOMING
    from flow_engine.adapters.scripts import connect

    message = {"from": phone, "id": f"wamid.{uuid.uuid4().hex}", "timestamp": str(int(time.time())),
               "type": "text", "text": {"body": text}}
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": channel},
             "contacts": [{"wa_id": phone, **({"profile": {"name": name}} if name else {})}], "messages": [message]}
    payload = {"object": "whatsapp_business_account", "entry": [{"id": org, "changes": [
        {"field": "messages", "value": value}]}]}
    client = connect(_settings().redis_url)
    entry_id = client.xadd(INCOMING, {"source": "cli", "org_id": org, "channel_id": channel,
                                      "payload": json.dumps(payload, ensure_ascii=False)})
    click.echo(f"{INCOMING} {entry_id}: {phone} > {text}")


@main.command()
@click.option("--from-start", is_flag=True, help="print the whole stream first")
@click.option("--count", type=int, default=0, help="stop after COUNT entries (0: follow forever)")
def tail(from_start: bool, count: int) -> None:
    """Follow nf:outbox, one readable line per message."""
    from datetime import datetime

    from flow_engine.adapters.keys import OUTBOX
    from flow_engine.adapters.scripts import connect

    client = connect(_settings().redis_url)
    last, seen = ("0-0" if from_start else "$"), 0
    try:
        while not count or seen < count:
            for _stream, entries in client.xread({OUTBOX: last}, block=1000, count=100) or []:
                for entry_id, fields in entries:
                    last, seen = entry_id, seen + 1
                    at = datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000).strftime("%H:%M:%S.%f")[:-3]
                    kind = fields.get("type", "?")
                    body = fields.get(kind, "") if kind == "text" else f"[{kind}] {fields.get(kind, '')}"
                    click.echo(printable(f"{at} {fields.get('org_id', '')} → {fields.get('to', '')}: {body}"))
                    if count and seen >= count:
                        return
    except KeyboardInterrupt:
        pass


def _require_redis(url: str) -> None:
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


@main.command()
@click.option("--concurrency", "-c", default=2, show_default=True, help="worker processes")
@click.option("--flower/--no-flower", default=True, show_default=True, help="start Flower")
@click.option("--flower-port", default=5555, show_default=True)
@click.option("--events/--no-events", default=True, show_default=True,
              help="worker task events (Flower's live task list; costs throughput)")
def up(concurrency: int, flower: bool, flower_port: int, events: bool) -> None:
    """Run bridge, timer loop, a worker and Flower in the foreground; Ctrl-C stops them all."""
    from flow_engine.supervisor import up as run_up

    _require_redis(_settings().redis_url)
    sys.exit(run_up(concurrency, flower, flower_port, events))


@main.command()
@click.argument("file", metavar="FLOW", type=click.Path(dir_okay=False))
@click.option("--stats", "with_stats", is_flag=True, help="draw the org's run counts on steps and edges")
@click.option("--org", default=None, help="with --stats: whose runs (FLOW may then be a stored flow's id or name)")
@click.option("--since", default=None, help="with --stats: runs started since (30m, 2h, 7d, ISO date/time)")
def graph(file: str, with_stats: bool, org: str | None, since: str | None) -> None:
    """Print a flow (a file) as a Mermaid flowchart (paste it into a ```mermaid block)."""
    from flow_engine.cli_runs import graph_with_stats
    from flow_engine.core.mermaid import to_mermaid

    if with_stats and org is None:
        raise click.UsageError("--stats needs --org")
    raw, counts = load_graph(file) if not with_stats or Path(file).exists() else None, None
    if with_stats:
        raw, counts = graph_with_stats(file, raw, str(org), since)
    flow = parse_flow(raw)
    if flow.problems:
        raise click.ClickException(f"{file} is not a valid flow:\n" + "\n".join(flow.problems))
    click.echo(to_mermaid(flow, counts), nl=False)


def _mib(size_bytes: int | None) -> str:
    return f"{(size_bytes or 0) / 1_048_576:.1f} MiB"


def _stream_row(facts: dict[str, int | None]) -> str:
    age = facts["oldest_age_ms"]
    oldest = "empty" if age is None else f"oldest {age / 1000:.0f} s old"
    return f"{facts['length']} entries, {_mib(facts['memory_bytes'])}, {oldest}"


@main.group()
def waits() -> None:
    """Wait state (runs paused for a reply or in a delay)."""


@waits.command("upgrade")
def waits_upgrade() -> None:
    """Give waits stored by an engine from before waits expired their expiry (once, after upgrading)."""
    from flow_engine.adapters.keys import Keys
    from flow_engine.adapters.scripts import Scripts, connect
    from flow_engine.adapters.upgrade import upgrade_waits
    from flow_engine.clock import now_ms

    settings = _settings()
    _require_redis(settings.redis_url)
    client = connect(settings.redis_url)
    seen, upgraded = upgrade_waits(client, Scripts(client), Keys.of(settings), settings.run_expire_min * 60_000,
                                   now_ms())
    click.echo(f"{seen} waits, {upgraded} given an expiry in {settings.run_expire_min} min")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.option("--no-workers", is_flag=True, help="do not ping the Celery workers")
def status(as_json: bool, no_workers: bool) -> None:
    """Stream lag, pending entries, lanes, timers, waits, DLQ and live workers."""
    from flow_engine import ops
    from flow_engine.adapters.scripts import connect

    conf = _settings()
    _require_redis(conf.redis_url)
    workers = None if no_workers else ops.live_workers()
    state = ops.status(conf, connect(conf.redis_url), workers)
    if as_json:
        click.echo(json.dumps(state.as_dict()))
        return
    lag = "no consumer group yet" if state.group_lag is None else f"lag {state.group_lag}, pending {state.pending}"
    busiest = f" (busiest: lane {state.busiest_lane[0]}, {state.busiest_lane[1]})" if state.busiest_lane else ""
    rows = [
        ("consumer group", f"{conf.group}: {lag}"),
        ("lanes", f"{state.lanes_backlog} events waiting for a worker{busiest}"),
        ("timers", f"{state.scheduled} scheduled, " + (
            f"the most overdue late by {state.oldest_overdue_ms} ms" if state.oldest_overdue_ms else "none overdue")),
        ("waits", f"{state.waits} runs paused, {state.held} messages held during delays"),
        ("bridge", f"led by {state.bridge}" if state.bridge else "none running"),
        ("ignored", ", ".join(f"{reason} {count}" for reason, count in state.ignored.items()) or "none"),
        *((name, _stream_row(facts)) for name, facts in state.streams.items()),
        ("redis memory", f"{_mib(state.redis_memory['used_memory'])} used of "
                         f"{_mib(state.redis_memory['maxmemory']) if state.redis_memory['maxmemory'] else 'no limit'}"),
    ]
    if state.workers is not None:
        names = f": {', '.join(state.workers)}" if state.workers else ""
        rows.append(("workers", f"{len(state.workers)} live{names}"))
    for name, value in rows:
        click.echo(f"{name:<16} {value}")


@main.command()
@click.option("--check", "checks", multiple=True, type=click.Choice(["redis", "db", "bridge", "worker"]),
              help="what to check (default: redis and db)")
def health(checks: tuple[str, ...]) -> None:
    """Exit 0 when healthy, 1 otherwise (for container healthchecks)."""
    from flow_engine import ops

    results = ops.check(_settings(), checks or ("redis", "db"))
    problems = [f"{name}: {problem}" for name, problem in results if problem]
    if problems:
        click.echo("unhealthy: " + "; ".join(problems), err=True)
        sys.exit(1)
    click.echo("ok: " + ", ".join(name for name, _ in results))


@main.group()
def dlq() -> None:
    """The dead-letter queue nf:incoming:dlq."""


@dlq.command("list")
@click.option("--limit", default=20, show_default=True, help="entries to show, oldest first")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per entry")
def dlq_list(limit: int, as_json: bool) -> None:
    """Show DLQ entries: id, error, detail, where they came from."""
    from flow_engine import ops
    from flow_engine.adapters.scripts import connect

    for entry_id, fields in ops.dlq_entries(connect(_settings().redis_url, decode=False), limit):
        if as_json:  # JSON escapes C0 controls itself; the others are shown as JSON escapes too
            click.echo(printable_json(json.dumps({"id": entry_id, **fields}, ensure_ascii=False)))
        else:
            org = fields.get("org_id", "-")
            click.echo(printable(f"{entry_id}  {fields.get('error', '?'):<22} org {org}  retries "
                                 f"{fields.get('retries', '0')}  from {fields.get('source_id', '?')}: "
                                 f"{fields.get('error_detail', '')}"))


@dlq.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="replay every entry")
def dlq_replay(ids: tuple[str, ...], replay_all: bool) -> None:
    """Re-inject entries into nf:incoming (each once) and remove them from the DLQ."""
    from flow_engine import ops
    from flow_engine.adapters.scripts import connect

    if bool(ids) == replay_all:
        raise click.UsageError("give DLQ entry ids, or --all")
    client = connect(_settings().redis_url, decode=False)  # entries may hold invalid UTF-8: replay them as they are
    chosen = [entry_id for entry_id, _fields in ops.dlq_entries(client)] if replay_all else list(ids)
    replayed, missing = 0, []
    with click.progressbar(ops.dlq_replay(client, chosen), length=len(chosen), label="replaying",
                           file=sys.stderr, hidden=len(chosen) < 20) as progress:
        for dlq_id, new_id in progress:
            if new_id is None:
                missing.append(dlq_id)
            else:
                replayed += 1
    click.echo(f"replayed {replayed} entries into nf:incoming")
    if missing:
        raise click.ClickException(f"not in the DLQ (replayed or purged already): {', '.join(missing)}")


@dlq.command("purge")
@click.option("--yes", is_flag=True, help="do not ask")
def dlq_purge(yes: bool) -> None:
    """Delete every DLQ entry."""
    from flow_engine import ops
    from flow_engine.adapters.scripts import connect

    client = connect(_settings().redis_url)
    if not yes:
        click.confirm(f"delete {client.xlen('nf:incoming:dlq')} DLQ entries?", abort=True)
    click.echo(f"purged {ops.dlq_purge(client)} entries")


main.add_command(runs)
main.add_command(stats)
