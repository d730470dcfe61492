"""The previous engine's state in Redis, converted into this engine's formats at switchover.

Its wait value (at the same `fe:wait:{org}:{channel}:{phone}` key) is a JSON object `{"path", "index",
"pattern", "resume_token", "org_id", "channel_id", "contact_phone", "timeout_path"}` with a TTL; its
timers, in the same ZSET, are JSON objects `{"payload", "org_id", "channel_id", "contact_phone",
"engine_resume": "{\\"path\\": P, \\"index\\": N}", "resume_token"?}` scored in epoch *seconds*. A timer
with a `resume_token` is a reply timeout (the wait holds the same token); one without is a delay,
resuming at step N of path P. Converted, a reply wait keeps its key, TTL and token; a delay becomes a
wait of kind "delay" plus a timer; every timer is scored in ms. Runs in flight continue where they
were, on the org's active flow, under a run id derived from the old token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flow_engine.adapters.effects import dump_wait
from flow_engine.adapters.keys import STATS, Keys
from flow_engine.adapters.scripts import RedisClient
from flow_engine.core.graph import Delay, Flow, WaitForReply
from flow_engine.core.ids import derive
from flow_engine.core.inbound import InvalidPayload, Message, parse_entry
from flow_engine.core.outcome import Timer, WaitState

# Timers scored below this are in seconds (the year 5138 in seconds; 1973 in milliseconds).
SECONDS_SCORE_LIMIT = 100_000_000_000
DEFAULT_CHANNEL = "wa_main"  # the previous engine's default channel_id
SCRIPT = (Path(__file__).resolve().parent / "lua" / "legacy.lua").read_text()

ActiveFlow = Callable[[str], Flow | None]


def is_legacy_wait(raw: str) -> bool:
    """The previous engine's wait value (a JSON object); this engine writes a JSON array."""
    return raw.startswith("{") and '"run_id"' not in raw


def _token(value: Any, fallback: str) -> str:
    return str(value) if isinstance(value, str | int) and str(value) else derive("legacy", fallback, size_bytes=8)


def _run_id(org_id: str, channel_id: str, contact: str, token: str) -> str:
    return derive("legacy-run", org_id, channel_id, contact, token)


def _wait_index(flow: Flow, path: str, index: int) -> int:
    """The index of the wait_for_reply step the previous engine meant: `index` itself, or the step
    before it (where it would go on)."""
    steps = flow.paths.get(path, ())
    return index if 0 <= index < len(steps) and isinstance(steps[index], WaitForReply) else index - 1


def _delay_index(flow: Flow, path: str, resume_at: int) -> int:
    """The index of the delay step before step `resume_at` (where the previous engine resumes), or
    `resume_at` itself when that is the delay."""
    steps = flow.paths.get(path, ())
    if not (0 <= resume_at - 1 < len(steps) and isinstance(steps[resume_at - 1], Delay)) and \
            0 <= resume_at < len(steps) and isinstance(steps[resume_at], Delay):
        return resume_at
    return resume_at - 1


def wait_of(raw: str, who: tuple[str, str, str], flow: Flow | None, due_ms: int | None = None) -> WaitState | None:
    """The previous engine's reply wait as this engine's, on the org's active `flow`; None when it
    cannot go on (no flow, no such path, not a wait value)."""
    try:
        value = json.loads(raw)
        path, index = str(value["path"]), int(value["index"])
    except (ValueError, KeyError, TypeError):
        return None
    if flow is None or path not in flow.paths:
        return None
    org_id, channel_id, contact = who
    token = _token(value.get("resume_token"), raw)
    return WaitState(
        run_id=_run_id(org_id, channel_id, contact, token), flow_id=flow.id, flow_version=flow.version, path=path,
        index=_wait_index(flow, path, index), kind="reply", token=token, due_ms=due_ms,
        trigger_text="", intent="default",
    )


@dataclass(frozen=True)
class OldTimer:
    member: str
    due_ms: int
    org_id: str
    channel_id: str
    contact: str
    token: str | None  # a reply timeout's resume_token; None: a delay
    path: str
    index: int
    text: str  # the message that started the delay ({{message.text}} after it)


def parse_timer(member: str, score: float) -> OldTimer | None:
    try:
        value = json.loads(member)
        resume = value["engine_resume"]
        resume = json.loads(resume) if isinstance(resume, str) else resume
        org_id, contact = str(value["org_id"]), str(value["contact_phone"])
        channel_id = str(value.get("channel_id") or DEFAULT_CHANNEL)
        path, index = str(resume["path"]), int(resume["index"])
    except (ValueError, KeyError, TypeError):
        return None
    token = value.get("resume_token")
    text = ""
    payload = value.get("payload")
    if isinstance(payload, str):
        try:
            events = parse_entry("0-0", {"payload": payload, "org_id": org_id, "channel_id": channel_id})
            text = next((e.text for e in events if isinstance(e, Message)), "")
        except InvalidPayload:
            pass
    return OldTimer(member, int(score * 1000), org_id, channel_id, contact,
                    _token(token, member) if token else None, path, index, text)


@dataclass
class Report:
    waits_found: int = 0
    waits_converted: int = 0
    timers_found: int = 0
    timers_converted: int = 0
    dropped: list[str] = field(default_factory=list)  # what could not be converted, and why

    def lines(self) -> list[str]:
        return [f"waits of the previous engine: {self.waits_found} found, {self.waits_converted} converted",
                f"timers of the previous engine: {self.timers_found} found, {self.timers_converted} converted",
                *(f"dropped: {reason}" for reason in self.dropped)]


def has_old_timers(client: RedisClient, keys: Keys) -> bool:
    return bool(client.zrangebyscore(keys.timers, "-inf", f"({SECONDS_SCORE_LIMIT}", start=0, num=1))


def convert(client: RedisClient, keys: Keys, active: ActiveFlow, *, dry_run: bool = False) -> Report:
    """Convert every old wait and timer (`active`: the org's active flow). Safe to run again, and
    concurrently: each conversion applies only while the old value is still in place."""
    report = Report()
    ops: list[list[Any]] = []
    scored = client.zrangebyscore(keys.timers, "-inf", f"({SECONDS_SCORE_LIMIT}", withscores=True)
    members = [member for member, _score in scored]
    old_timers = [parse_timer(m, score) if isinstance(m, str) else None for m, score in scored]
    report.timers_found = len(members)
    timeouts = {(t.org_id, t.channel_id, t.contact): t for t in old_timers if t is not None and t.token}
    prefix = keys.wait_prefix + ":"
    for key, raw in _values(client, prefix + "*"):
        if raw is None or not is_legacy_wait(raw):
            continue
        report.waits_found += 1
        who = _who(raw, key[len(prefix):])
        timer = timeouts.get(who) if who else None
        wait = wait_of(raw, who, active(who[0]), timer.due_ms if timer else None) if who else None
        if who is None or wait is None or keys.wait(*who) != key:
            report.dropped.append(f"wait {key}: no active flow with its path; it expires with its TTL")
            continue
        # With a timeout timer the key must outlive it (its TTL was the timeout: it would vanish as the
        # timer fires, and the timeout find no wait); without one it keeps the previous engine's TTL.
        ops.append(["w", key, raw, dump_wait(wait), "persist" if timer else "keepttl"])
    for member, timer in zip(members, old_timers, strict=True):
        if timer is None:
            report.dropped.append(f"timer {member[:120]}: not the previous engine's format")
            ops.append(["d", member])
            continue
        if timer.token is not None:  # a reply timeout: its wait carries the same token
            new = Timer(timer.token, timer.due_ms, timer.org_id, timer.channel_id, timer.contact,
                        _run_id(timer.org_id, timer.channel_id, timer.contact, timer.token), "timeout")
            ops.append(["t", member, str(new.due_ms), new.member()])
            continue
        flow = active(timer.org_id)
        if flow is None or timer.path not in flow.paths:
            report.dropped.append(f"delay of {timer.org_id}/{timer.contact}: no active flow with path {timer.path!r}")
            ops.append(["d", member])
            continue
        token = derive("legacy-delay", member, size_bytes=8)
        wait = WaitState(
            run_id=_run_id(timer.org_id, timer.channel_id, timer.contact, token), flow_id=flow.id,
            flow_version=flow.version, path=timer.path, index=_delay_index(flow, timer.path, timer.index),
            kind="delay", token=token, due_ms=timer.due_ms, trigger_text=timer.text, intent="default",
        )
        new = Timer(token, timer.due_ms, timer.org_id, timer.channel_id, timer.contact, wait.run_id, "delay")
        ops.append(["w", keys.wait(timer.org_id, timer.channel_id, timer.contact), "", dump_wait(wait)])
        ops.append(["t", member, str(new.due_ms), new.member()])
    report.waits_converted = sum(1 for op in ops if op[0] == "w" and op[2])
    report.timers_converted = sum(1 for op in ops if op[0] == "t")
    if not dry_run:
        script = client.register_script(SCRIPT)
        for start in range(0, len(ops), 500):  # a few hundred per call: Redis is never blocked for long
            script(keys=[keys.timers, STATS], args=[json.dumps(ops[start:start + 500], ensure_ascii=False)])
    return report


def _values(client: RedisClient, pattern: str, page: int = 1000) -> Iterator[tuple[str, str | None]]:
    """(key, value) of every key matching `pattern`, a page per round trip (a million waits may be there)."""
    keys: list[str] = []
    for key in client.scan_iter(match=pattern, count=page):
        keys.append(key)
        if len(keys) >= page:
            yield from zip(keys, client.mget(keys), strict=True)
            keys = []
    if keys:
        yield from zip(keys, client.mget(keys), strict=True)


def _who(raw: str, suffix: str) -> tuple[str, str, str] | None:
    """(org, channel, contact) of an old wait: from its value, else from its key."""
    try:
        value = json.loads(raw)
        return str(value["org_id"]), str(value.get("channel_id") or DEFAULT_CHANNEL), str(value["contact_phone"])
    except (ValueError, KeyError, TypeError):
        parts = suffix.split(":")
        return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def convert_with_database(client: RedisClient, keys: Keys, database_url: str, *, dry_run: bool = False) -> Report:
    """`convert`, looking up active flows in the database (SchemaError when it lacks `flows`)."""
    from sqlalchemy.exc import SQLAlchemyError

    from flow_engine.adapters import schema
    from flow_engine.adapters.db import make_engine
    from flow_engine.adapters.store import FlowCache

    engine = make_engine(database_url)
    try:
        schema.require(engine, schema.FLOWS_READ)
        return convert(client, keys, FlowCache(engine, ttl_s=3600).active, dry_run=dry_run)
    except SQLAlchemyError as exc:  # lost between the check and the lookups
        raise schema.DatabaseUnreachable(f"database at {schema.safe_url(engine)}: {schema.one_line(exc)}") from None
    finally:
        engine.dispose()
