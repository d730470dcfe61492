"""One frozen settings object read from the environment and validated at start-up (SPEC §2).

A bad value raises SettingsError naming the variable; the entry points print it as one line and exit.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlparse

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting has a value the engine cannot run with."""


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://localhost:6379/0"
    broker_url: str = "redis://localhost:6379/0"
    database_url: str = "sqlite:///flow_engine.db"
    group: str = "engine"
    consumer: str = "engine"
    group_start: str = "0"  # "0": the whole stream's history; "$": only new entries
    max_retries: int = 2
    sched_poll_ms: int = 500
    sched_zset: str = "nf:incoming:scheduled"
    wait_prefix: str = "fe:wait"
    metrics_port: int | None = None
    lanes: int = 16  # the most worker processes that can work at once; fewer lanes, bigger batches
    read_batch: int = 200  # entries per XREADGROUP of the bridge
    lane_batch: int = 400  # most events per lane transaction of a worker (batches form only under load)
    lock_ttl_ms: int = 10_000  # a lane whose worker died is free again after this
    stall_ms: int = 5_000  # an armed lane with events and no holder for this long is re-armed
    claim_idle_ms: int = 10_000  # the bridge lease; entries of a bridge silent this long are claimed
    flow_cache_s: float = 5.0
    dedupe_ttl_s: int = 48 * 3600
    retry_backoff_ms: int = 500  # first retry delay; doubles per retry, capped at 30 s
    fallback_language: str = "es"
    max_held: int = 50  # messages held per contact during a delay; the next one goes to the DLQ
    run_expire_min: int = 1440  # a run paused for a reply expires after this (flows may set their own)
    interrupt_words: str = ""  # comma-separated words that end a paused run and start afresh
    max_steps: int = 1000  # steps of a run without a reply from the contact before it fails (loop-limit)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int = 2**31) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: must be an integer") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={raw!r}: must be between {minimum} and {maximum}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, check: Callable[[str], bool], what: str) -> str:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not check(raw):
        raise SettingsError(f"{name}={raw!r}: {what}")
    return raw


def _redis_url(value: str) -> bool:
    return urlparse(value).scheme in ("redis", "rediss", "unix")


def _database_url(value: str) -> bool:
    scheme = urlparse(value).scheme
    return scheme.startswith("sqlite") or scheme.startswith("postgresql")


def _name(value: str) -> bool:
    return bool(value.strip()) and " " not in value


def _words(value: str) -> bool:
    return all(word.strip() for word in value.split(","))


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; raises SettingsError naming the first bad variable."""
    env = os.environ if env is None else env
    redis_url = _choice(env, "REDIS_URL", Settings.redis_url, _redis_url, "must be a redis:// URL")
    metrics = env.get("FLOW_ENGINE_METRICS_PORT")
    return Settings(
        redis_url=redis_url,
        broker_url=_choice(env, "CELERY_BROKER_URL", redis_url, lambda v: "://" in v, "must be a broker URL"),
        database_url=_choice(
            env, "DATABASE_URL", Settings.database_url, _database_url,
            "must be a SQLAlchemy URL for sqlite or postgresql (e.g. postgresql+psycopg2://user@host/db)",
        ),
        group=_choice(env, "FLOW_ENGINE_GROUP", Settings.group, _name, "must be a name without spaces"),
        consumer=_choice(env, "FLOW_ENGINE_CONSUMER", socket.gethostname(), _name, "must be a name without spaces"),
        group_start=_choice(env, "FLOW_ENGINE_GROUP_START", "0", lambda v: v in ("0", "$"), 'must be "0" or "$"'),
        max_retries=_int(env, "FLOW_ENGINE_MAX_RETRIES", Settings.max_retries, 0, 100),
        sched_poll_ms=_int(env, "FLOW_ENGINE_SCHED_POLL_MS", Settings.sched_poll_ms, 1, 60_000),
        sched_zset=_choice(env, "FLOW_ENGINE_SCHED_ZSET", Settings.sched_zset, _name, "must be a key name"),
        wait_prefix=_choice(env, "FLOW_ENGINE_WAIT_PREFIX", Settings.wait_prefix, _name, "must be a key prefix"),
        metrics_port=None if not metrics else _int(env, "FLOW_ENGINE_METRICS_PORT", 0, 1, 65535),
        lanes=_int(env, "FLOW_ENGINE_LANES", Settings.lanes, 1, 4096),
        read_batch=_int(env, "FLOW_ENGINE_READ_BATCH", Settings.read_batch, 1, 10_000),
        lane_batch=_int(env, "FLOW_ENGINE_LANE_BATCH", Settings.lane_batch, 1, 10_000),
        lock_ttl_ms=_int(env, "FLOW_ENGINE_LOCK_TTL_MS", Settings.lock_ttl_ms, 500, 600_000),
        stall_ms=_int(env, "FLOW_ENGINE_STALL_MS", Settings.stall_ms, 100, 600_000),
        claim_idle_ms=_int(env, "FLOW_ENGINE_CLAIM_IDLE_MS", Settings.claim_idle_ms, 500, 3_600_000),
        flow_cache_s=_int(env, "FLOW_ENGINE_FLOW_CACHE_MS", 5000, 0, 3_600_000) / 1000,
        dedupe_ttl_s=_int(env, "FLOW_ENGINE_DEDUPE_TTL_S", Settings.dedupe_ttl_s, 1, 30 * 86400),
        retry_backoff_ms=_int(env, "FLOW_ENGINE_RETRY_BACKOFF_MS", Settings.retry_backoff_ms, 1, 60_000),
        fallback_language=_choice(
            env, "FLOW_ENGINE_FALLBACK_LANG", "es", lambda v: v in ("es", "en"), 'must be "es" or "en"'
        ),
        max_held=_int(env, "FLOW_ENGINE_MAX_HELD", Settings.max_held, 0, 10_000),
        run_expire_min=_int(env, "FLOW_ENGINE_RUN_EXPIRE_MIN", Settings.run_expire_min, 1, 366 * 24 * 60),
        interrupt_words=_choice(env, "FLOW_ENGINE_INTERRUPT_WORDS", "", _words,
                                "must be comma-separated words, e.g. menu,inicio,salir"),
        max_steps=_int(env, "FLOW_ENGINE_MAX_STEPS", Settings.max_steps, 1, 1_000_000),
    )


_current: Settings | None = None


def get() -> Settings:
    """The process's settings, read once."""
    global _current
    if _current is None:
        _current = load()
    return _current
