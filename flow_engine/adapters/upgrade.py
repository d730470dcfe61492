"""Waits stored by an engine from before waits expired (SPEC §5.1): `flow-engine waits upgrade` gives
each one paused for a reply without a timeout its expiry timer, counted from now, so no contact of a
running system stays stranded past the default expiry. Without it, such a wait gets its expiry from
the first message that does not end it (core/interpreter.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from flow_engine.adapters.effects import dump_wait, load_wait
from flow_engine.adapters.keys import Keys
from flow_engine.adapters.scripts import RedisClient, Scripts
from flow_engine.core.outcome import Timer


def _unpart(value: str) -> str:
    """The inverse of keys.part()."""
    return value.replace("%3A", ":").replace("%25", "%")


def wait_keys(client: RedisClient, keys: Keys) -> Iterator[tuple[str, tuple[str, str, str]]]:
    """Every wait key with the (org, channel, contact) it belongs to."""
    prefix = keys.wait_prefix + ":"
    pattern = prefix.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?").replace("[", "\\[") + "*"
    for key in client.scan_iter(match=pattern, count=1000):
        parts = key[len(prefix):].split(":")
        if len(parts) == 3:
            org, channel, contact = (_unpart(p) for p in parts)
            yield key, (org, channel, contact)


def upgrade_waits(client: RedisClient, scripts: Scripts, keys: Keys, expire_ms: int, now_ms: int) -> tuple[int, int]:
    """(waits seen, waits given an expiry). Safe to run again, and while the engine runs."""
    seen = upgraded = 0
    for key, (org, channel, contact) in wait_keys(client, keys):
        seen += 1
        raw = client.get(key)
        try:
            wait = load_wait(raw)
        except (ValueError, KeyError, TypeError):
            continue  # not a wait this engine wrote
        if wait is None or wait.kind != "reply" or wait.due_ms is not None:
            continue  # gone, a delay, or it has a timer already
        after = replace(wait, due_ms=now_ms + expire_ms, expires=True)
        timer = Timer(wait.token, now_ms + expire_ms, org, channel, contact, wait.run_id, "expire")
        upgraded += int(scripts.upgrade_wait(keys=[key, keys.timers],
                                             args=[raw, dump_wait(after), timer.due_ms, timer.member()]))
    return seen, upgraded
