"""Operations: status, health and the DLQ (list, replay, purge) — what `flow-engine` shows operators."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from flow_engine.adapters import schema
from flow_engine.adapters.db import make_engine
from flow_engine.adapters.dlq import replay_fields
from flow_engine.adapters.keys import BRIDGE_LEASE, DLQ, INCOMING, LANES, OUTBOX, STATS, WEBHOOKS, Keys
from flow_engine.adapters.retention import stream_facts
from flow_engine.adapters.scripts import RedisClient, Scripts, connect
from flow_engine.adapters.signing import REPLAY_SIG, load_secret, replay_sig
from flow_engine.clock import now_ms
from flow_engine.settings import Settings


@dataclass(frozen=True)
class Status:
    stream_length: int
    group_lag: int | None  # None: the group does not exist yet
    pending: int
    lanes_backlog: int
    busiest_lane: tuple[str, int] | None  # (lane, events)
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


def lane_lengths(client: RedisClient) -> dict[str, int]:
    """Events waiting in each lane that holds any (two round trips, whatever the number of orgs)."""
    lanes = sorted(_text(lane) for lane in client.smembers(LANES))
    pipe = client.pipeline(transaction=False)
    for lane in lanes:
        pipe.llen(Keys.lane(lane))
    return {lane: int(length) for lane, length in zip(lanes, pipe.execute(), strict=True) if length}


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
        lanes_backlog=sum(lanes.values()),
        busiest_lane=None if busiest is None else (busiest, lanes[busiest]),
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


def dlq_purge(client: RedisClient) -> int:
    """Delete every DLQ entry; returns how many there were."""
    count = int(client.xlen(DLQ))
    client.xtrim(DLQ, maxlen=0, approximate=False)
    return count
