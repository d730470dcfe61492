"""Operations: status, health, the DLQ (list, replay, purge), migrating the database, and whether the
engine is idle — what `flow-engine` shows operators, and what tests and benchmarks wait for."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from flow_engine.adapters import schema
from flow_engine.adapters.db import make_engine
from flow_engine.adapters.dlq import printable, printable_json, replay_fields
from flow_engine.adapters.keys import (
    BRIDGE_LEASE,
    DLQ,
    INBOX_PREFIX,
    INBOXES,
    INCOMING,
    LANE_PREFIX,
    LANES,
    OUTBOX,
    STATS,
    WEBHOOKS,
    Keys,
)
from flow_engine.adapters.retention import stream_facts
from flow_engine.adapters.scripts import RedisClient, Scripts, connect
from flow_engine.adapters.signing import REPLAY_SIG, load_secret, replay_sig
from flow_engine.clock import now_ms
from flow_engine.errors import SchemaError
from flow_engine.settings import Settings


@dataclass(frozen=True)
class Status:
    stream_length: int
    group_lag: int | None  # None: the group does not exist yet
    pending: int
    inbox_backlog: int  # entries taken in from nf:incoming, waiting in their org's inbox to be handed on
    busiest_inbox: tuple[str, int] | None  # (org, entries)
    lanes_backlog: int
    busiest_lane: tuple[str, int] | None  # (lane, events)
    busy_lanes: int  # lanes holding events
    scheduled: int
    oldest_overdue_ms: int  # how late the most overdue timer is (0: none is due)
    waits: int
    held: int  # messages held until their contact's run leaves a delay
    dlq: int
    bridge: str | None  # the consumer holding the bridge lease
    workers: list[str] | None  # None: not asked
    ignored: dict[str, int]  # events that got no answer, by reason (since the stats hash was created)
    streams: dict[str, dict[str, int | None]]  # per stream: length, memory_bytes, oldest_age_ms
    redis_memory: dict[str, int]  # used_memory and maxmemory (0: no limit) in bytes

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _lengths(client: RedisClient, members: str, prefix: str) -> dict[str, int]:
    """The length of the list `prefix + m` for each member m of the set `members` that holds any (two
    round trips, whatever the number of members)."""
    names = sorted(_text(name) for name in client.smembers(members))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(f"{prefix}{name}")
    return {name: int(length) for name, length in zip(names, pipe.execute(), strict=True) if length}


def lane_lengths(client: RedisClient) -> dict[str, int]:
    """Events waiting in each lane that holds any."""
    return _lengths(client, LANES, LANE_PREFIX)


def inbox_lengths(client: RedisClient) -> dict[str, int]:
    """Entries waiting in each org's inbox (lua/intake.lua), by org."""
    return _lengths(client, INBOXES, INBOX_PREFIX)


@dataclass(frozen=True)
class Backlog:
    lag: int  # entries of nf:incoming the group has not read
    pending: int  # entries read but not yet handed on: pending in the group or waiting in an inbox
    lanes: int  # events in lanes (-1: not counted, the stream is not through yet)

    @property
    def idle(self) -> bool:
        return self.lag == 0 and self.pending == 0 and self.lanes == 0


def _stream_backlog(client: RedisClient, group: str) -> tuple[int, int, int]:
    """(entries the group has not read, entries pending in the group, orgs whose inbox holds entries):
    one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.xinfo_groups(INCOMING)
    pipe.xinfo_stream(INCOMING)
    pipe.xpending(INCOMING, group)
    pipe.scard(INBOXES)
    groups, stream, pending, inboxes = pipe.execute()
    info = next(g for g in groups if g["name"] == group)
    lag = info.get("lag")
    if lag is None:  # Redis cannot tell (entries deleted): compare ids instead
        lag = 0 if info["last-delivered-id"] == stream["last-generated-id"] else 1
    return int(lag), int(pending["pending"]), int(inboxes)


def backlog(client: RedisClient, group: str) -> Backlog:
    """What the engine has still to do; the lanes are only counted (in one round trip) once the stream
    is read and handed on, to keep polling light. Takes a client made with `connect(url)`."""
    lag, pending, inboxes = _stream_backlog(client, group)
    if lag or pending or inboxes:
        waiting = sum(inbox_lengths(client).values()) if inboxes else 0
        return Backlog(lag, pending + waiting, -1)
    return Backlog(0, 0, sum(lane_lengths(client).values()))


def idle(client: RedisClient, group: str) -> bool:
    """Whether the engine is idle: every entry read and handed on, every lane empty. Counts nothing it
    need not (benchmarks and tests poll it while the engine works: the poll competes for the CPU)."""
    return not any(_stream_backlog(client, group)) and not lane_lengths(client)


def status(settings: Settings, client: RedisClient, workers: list[str] | None) -> Status:
    keys = Keys.of(settings)
    pipe = client.pipeline(transaction=False)
    pipe.xlen(INCOMING)
    pipe.xinfo_groups(INCOMING)
    pipe.zcard(keys.timers)
    pipe.zrange(keys.timers, 0, 0, withscores=True)
    pipe.hgetall(STATS)
    pipe.xlen(DLQ)
    pipe.get(BRIDGE_LEASE)
    length, groups, scheduled, first, stats, dlq, lease = pipe.execute(raise_on_error=False)
    stats = stats if isinstance(stats, dict) else {}
    lanes = lane_lengths(client)
    inboxes = inbox_lengths(client)
    busiest_inbox = max(inboxes, key=inboxes.__getitem__, default=None)
    at_ms = now_ms()
    streams = stream_facts(client, (INCOMING, OUTBOX, WEBHOOKS, DLQ), at_ms)
    memory = client.info("memory")
    group = next((g for g in groups if g.get("name") == settings.group), None) if isinstance(groups, list) else None
    busiest = max(lanes, key=lanes.__getitem__, default=None)
    overdue = max(now_ms() - int(first[0][1]), 0) if first else 0
    return Status(
        stream_length=int(length) if isinstance(length, int) else 0,
        group_lag=None if group is None else int(group.get("lag") or 0),
        pending=0 if group is None else int(group.get("pending") or 0),
        inbox_backlog=sum(inboxes.values()),
        busiest_inbox=None if busiest_inbox is None else (busiest_inbox, inboxes[busiest_inbox]),
        lanes_backlog=sum(lanes.values()),
        busiest_lane=None if busiest is None else (busiest, lanes[busiest]),
        busy_lanes=len(lanes),
        scheduled=int(scheduled),
        oldest_overdue_ms=overdue,
        waits=int(stats.get("waits") or 0),
        held=int(stats.get("held") or 0),
        dlq=int(dlq),
        bridge=lease.split(":", 1)[0] if lease else None,
        workers=workers,
        ignored={name.split(":", 1)[1]: int(count) for name, count in sorted(stats.items())
                 if name.startswith("ignored:")},
        streams=streams,
        redis_memory={"used_memory": int(memory.get("used_memory", 0)), "maxmemory": int(memory.get("maxmemory", 0))},
    )


def _mib(size_bytes: int | None) -> str:
    return f"{(size_bytes or 0) / 1_048_576:.1f} MiB"


def _stream_row(facts: dict[str, int | None]) -> str:
    age = facts["oldest_age_ms"]
    oldest = "empty" if age is None else f"oldest {age / 1000:.0f} s old"
    return f"{facts['length']} entries, {_mib(facts['memory_bytes'])}, {oldest}"


def status_rows(state: Status, group: str) -> list[tuple[str, str]]:
    """`flow-engine status` as (what, how it is) rows."""
    lag = "no consumer group yet" if state.group_lag is None else f"lag {state.group_lag}, pending {state.pending}"
    busiest = f" (busiest: lane {state.busiest_lane[0]}, {state.busiest_lane[1]})" if state.busiest_lane else ""
    memory = state.redis_memory
    loudest = f" (most: org {state.busiest_inbox[0]}, {state.busiest_inbox[1]})" if state.busiest_inbox else ""
    rows = [
        ("consumer group", f"{group}: {lag}"),
        ("inboxes", f"{state.inbox_backlog} entries taken in, waiting to be handed on{loudest}"),
        ("lanes", f"{state.lanes_backlog} events waiting for a worker{busiest}"),
        ("timers", f"{state.scheduled} scheduled, " + (
            f"the most overdue late by {state.oldest_overdue_ms} ms" if state.oldest_overdue_ms else "none overdue")),
        ("waits", f"{state.waits} runs paused, {state.held} messages held during delays"),
        ("bridge", f"led by {state.bridge}" if state.bridge else "none running"),
        ("ignored", ", ".join(f"{reason} {count}" for reason, count in state.ignored.items()) or "none"),
        *((name, _stream_row(facts)) for name, facts in state.streams.items()),
        ("redis memory", f"{_mib(memory['used_memory'])} used of "
                         f"{_mib(memory['maxmemory']) if memory['maxmemory'] else 'no limit'}"),
    ]
    if state.workers is not None:
        names = f": {', '.join(state.workers)}" if state.workers else ""
        rows.append(("workers", f"{len(state.workers)} live{names}"))
    return rows


def live_workers(timeout_s: float = 1.0) -> list[str]:
    """Names of the Celery workers that answer a ping."""
    from flow_engine.celery import app

    replies = app.control.ping(timeout=timeout_s) or []
    return sorted(name for reply in replies for name in reply)


def _redis_problem(settings: Settings) -> str | None:
    connect(settings.redis_url).ping()
    return None


def _db_problem(settings: Settings) -> str | None:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        schema.require(engine)  # reachable is not enough: the worker needs its columns
    finally:
        engine.dispose()
    return None


def _bridge_problem(settings: Settings) -> str | None:
    return None if connect(settings.redis_url).get(BRIDGE_LEASE) else "no bridge holds the lease"


def _worker_problem(_settings: Settings) -> str | None:
    return None if live_workers() else "no worker answers a ping"


CHECKS: dict[str, Callable[[Settings], str | None]] = {
    "redis": _redis_problem, "db": _db_problem, "bridge": _bridge_problem, "worker": _worker_problem,
}


def check(settings: Settings, what: Iterable[str]) -> list[tuple[str, str | None]]:
    """(component, problem or None) for each of redis, db, bridge, worker; an error raised while
    checking (Redis or the database unreachable, a schema problem) is the component's problem."""
    results: list[tuple[str, str | None]] = []
    for component in what:
        try:
            problem = CHECKS[component](settings)
        except Exception as exc:
            problem = " ".join(str(exc).split()) or type(exc).__name__
        results.append((component, problem))
    return results


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def dlq_entries(raw_client: RedisClient, limit: int | None = None) -> list[tuple[str, dict[str, str]]]:
    """The DLQ, oldest first, as text (an entry may hold invalid UTF-8: shown with U+FFFD). Takes a
    client made with `connect(url, decode=False)`."""
    return [(_text(entry_id), {_text(k): _text(v) for k, v in fields.items()})
            for entry_id, fields in raw_client.xrange(DLQ, count=limit)]


def dlq_line(entry_id: str, fields: dict[str, str]) -> str:
    """A DLQ entry as one readable line: id, error, org, retries, where it came from, detail."""
    return printable(f"{entry_id}  {fields.get('error', '?'):<22} org {fields.get('org_id', '-')}  retries "
                     f"{fields.get('retries', '0')}  from {fields.get('source_id', '?')}: "
                     f"{fields.get('error_detail', '')}")


def dlq_json(entry_id: str, fields: dict[str, str]) -> str:
    """A DLQ entry as one JSON object (JSON escapes C0 controls itself; the others are escaped too)."""
    return printable_json(json.dumps({"id": entry_id, **fields}, ensure_ascii=False))


def dlq_replay(raw_client: RedisClient, ids: Iterable[str]) -> Iterator[tuple[str, str | None]]:
    """Re-inject DLQ entries into nf:incoming, each at most once, byte for byte: yields (dlq id, new id
    or None). Takes a client made with `connect(url, decode=False)`. The replay fields are signed
    with the engine's secret: the bridge honours no others."""
    scripts = Scripts(raw_client)
    secret = load_secret(raw_client)
    for dlq_id in ids:
        entries = raw_client.xrange(DLQ, min=dlq_id, max=dlq_id)
        if not entries:
            yield dlq_id, None
            continue
        raw = {_text(k): v for k, v in entries[0][1].items()}
        fields = replay_fields(dlq_id, raw)
        fields[REPLAY_SIG] = replay_sig(secret, fields)
        flat = [part for item in fields.items() for part in item]
        new_id = scripts.replay(keys=[DLQ, INCOMING], args=[dlq_id, *flat])
        yield dlq_id, _text(new_id) if new_id else None


def migrate(database_url: str, revision: str = "head") -> str:
    """Create or migrate the engine's tables (Alembic); one line saying where the database is now."""
    from alembic.util import CommandError
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from flow_engine.adapters.migrate import upgrade

    try:
        upgrade(database_url, revision)
    except (SQLAlchemyError, CommandError) as exc:
        raise SchemaError(f"DATABASE_URL: cannot migrate: {str(exc).splitlines()[0]}") from None
    return f"database at {make_url(database_url).render_as_string(hide_password=True)} is at revision {revision}"


def dlq_purge(client: RedisClient) -> int:
    """Delete every DLQ entry; returns how many there were."""
    count = int(client.xlen(DLQ))
    client.xtrim(DLQ, maxlen=0, approximate=False)
    return count
