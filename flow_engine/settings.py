"""One frozen settings object read from the environment and validated at start-up (SPEC §2).

A bad value raises SettingsError naming the variable; the entry points print it as one line and exit.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlparse

from flow_engine.errors import SettingsError as SettingsError  # raised here; importable from here

T = TypeVar("T")
N = TypeVar("N", int, float)


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
    lanes: int = 16  # lanes per org: the most worker processes one org can keep busy at once
    read_batch: int = 200  # entries per XREADGROUP of the bridge
    lane_batch: int = 400  # most events per lane transaction of a worker (batches form only under load)
    lock_ttl_ms: int = 10_000  # a lane whose worker died is free again after this
    stall_ms: int = 5_000  # an armed lane with events and no holder for this long is re-armed
    claim_idle_ms: int = 10_000  # the bridge lease; entries of a bridge silent this long are claimed
    flow_cache_s: float = 5.0
    dedupe_ttl_s: int = 48 * 3600
    retry_backoff_ms: int = 500  # first retry delay; doubles per retry, capped at 30 s
    fallback_language: str = "es"
    metrics_addr: str = "127.0.0.1"  # where /metrics listens: this machine only, unless told otherwise
    max_outputs: int = 500  # outbox entries and webhook events one message may cause
    max_output_bytes: int = 1024 * 1024  # and their size (characters of field values)
    log_level: str = "INFO"
    log_format: str | None = None  # "json" or "console"; None: console when stderr is a terminal, else JSON
    task_budget_ms: int = 250  # a busy lane's turn: then it yields to the other busy lanes
    stream_retention_s: int = 3600  # acknowledged stream entries older than this are trimmed
    stream_maxlen: int = 1_000_000  # a stream without consumer groups keeps this many (0: all)
    trim_every_ms: int = 10_000  # how often the timer loop trims the streams
    nlp_url: str | None = None  # the platform's NLP service; unset: keywords only
    nlp_timeout_s: float = 1.5
    nlp_min_score: float = 0.32  # a label scored lower falls back to the keywords
    max_held: int = 50  # messages held per contact during a delay; the next one goes to the DLQ
    run_expire_min: int = 1440  # a run paused for a reply expires after this (flows may set their own)
    interrupt_words: str = ""  # comma-separated words that end a paused run and start afresh
    max_steps: int = 1000  # steps of a run without a reply from the contact before it fails (loop-limit)
    handoff_ttl_min: float = 1440  # a contact handed to an agent is released after this (fractions allowed)


def _number(env: Mapping[str, str], name: str, default: N, minimum: N, maximum: N, parse: Callable[[str], N],
            what: str) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: must be {what}") from None
    if not minimum <= value <= maximum:  # also refuses nan
        raise SettingsError(f"{name}={raw!r}: must be between {minimum} and {maximum}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int = 2**31) -> int:
    return _number(env, name, default, minimum, maximum, int, "an integer")


def _float(env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float) -> float:
    return _number(env, name, default, minimum, maximum, float, "a number")


def _choice(env: Mapping[str, str], name: str, default: str, check: Callable[[str], bool], what: str) -> str:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not check(raw):
        raise SettingsError(f"{name}={raw!r}: {what}")
    return raw


BROKER_SCHEMES = ("redis", "rediss", "sentinel", "amqp", "amqps", "pyamqp", "sqs")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "console")


def _http_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _url(env: Mapping[str, str], name: str, default: str, check: Callable[[str], str | None]) -> str:
    """A URL setting: `check` returns what is wrong with it (None: fine); a URL that does not even
    parse (`redis://[::1`) is reported the same way, never as a traceback."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        parsed = urlparse(raw)
        parsed.port  # noqa: B018 (parsing the port is what raises for a bad one)
        problem = check(raw)
    except ValueError as exc:
        problem = f"is not a valid URL ({exc})"
    if problem:
        raise SettingsError(f"{name}={raw!r}: {problem}")
    return raw


def _redis_url(value: str) -> str | None:
    parsed = urlparse(value)
    if parsed.scheme not in ("redis", "rediss", "unix"):
        return "must be a redis:// URL"
    db = parsed.path.lstrip("/") if parsed.scheme != "unix" else ""
    if db and not (db.isascii() and db.isdigit() and int(db) < 16384):
        return f"the database number must be an integer, got {db!r}"
    return None


def _broker_url(value: str) -> str | None:
    scheme = urlparse(value).scheme
    if scheme not in BROKER_SCHEMES:
        return f"must be a broker URL ({', '.join(BROKER_SCHEMES)})"
    return _redis_url(value) if scheme in ("redis", "rediss") else None


def _database_url(value: str) -> str | None:
    scheme = urlparse(value).scheme
    if scheme.startswith("sqlite") or scheme.startswith("postgresql"):
        return None
    return "must be a SQLAlchemy URL for sqlite or postgresql (e.g. postgresql+psycopg2://user@host/db)"


def _name(value: str) -> bool:
    return bool(value.strip()) and " " not in value


def _words(value: str) -> bool:
    return all(word.strip() for word in value.split(","))


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; raises SettingsError naming the first bad variable."""
    env = os.environ if env is None else env
    redis_url = _url(env, "REDIS_URL", Settings.redis_url, _redis_url)
    metrics = env.get("FLOW_ENGINE_METRICS_PORT")
    return Settings(
        redis_url=redis_url,
        broker_url=_url(env, "CELERY_BROKER_URL", redis_url, _broker_url),
        database_url=_url(env, "DATABASE_URL", Settings.database_url, _database_url),
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
        metrics_addr=_choice(env, "FLOW_ENGINE_METRICS_ADDR", Settings.metrics_addr, _address,
                             "must be an IP address to listen on (127.0.0.1, 0.0.0.0, ::1)"),
        max_outputs=_int(env, "FLOW_ENGINE_MAX_OUTPUTS", Settings.max_outputs, 1, 100_000),
        max_output_bytes=_int(env, "FLOW_ENGINE_MAX_OUTPUT_BYTES", Settings.max_output_bytes, 1024, 64 * 1024 * 1024),
        task_budget_ms=_int(env, "FLOW_ENGINE_TASK_BUDGET_MS", Settings.task_budget_ms, 10, 60_000),
        stream_retention_s=_int(env, "FLOW_ENGINE_STREAM_RETENTION_S", Settings.stream_retention_s, 1, 365 * 86400),
        stream_maxlen=_int(env, "FLOW_ENGINE_STREAM_MAXLEN", Settings.stream_maxlen, 0, 2**40),
        trim_every_ms=_int(env, "FLOW_ENGINE_TRIM_EVERY_MS", Settings.trim_every_ms, 100, 3_600_000),
        log_level=_choice(env, "LOG_LEVEL", Settings.log_level, lambda v: v.upper() in LOG_LEVELS,
                          f"must be one of {', '.join(LOG_LEVELS)}").upper(),
        log_format=_choice(env, "LOG_FORMAT", "", lambda v: v.lower() in LOG_FORMATS,
                           f"must be one of {', '.join(LOG_FORMATS)}").lower() or None,
        nlp_url=_choice(env, "NLP_SERVICE_URL", "", _http_url, "must be an http:// or https:// URL") or None,
        nlp_timeout_s=_float(env, "NLP_TIMEOUT_SECONDS", Settings.nlp_timeout_s, 0.01, 60),
        nlp_min_score=_float(env, "NLP_MIN_SCORE", Settings.nlp_min_score, 0, 1),
        max_held=_int(env, "FLOW_ENGINE_MAX_HELD", Settings.max_held, 0, 10_000),
        run_expire_min=_int(env, "FLOW_ENGINE_RUN_EXPIRE_MIN", Settings.run_expire_min, 1, 366 * 24 * 60),
        interrupt_words=_choice(env, "FLOW_ENGINE_INTERRUPT_WORDS", "", _words,
                                "must be comma-separated words, e.g. menu,inicio,salir"),
        max_steps=_int(env, "FLOW_ENGINE_MAX_STEPS", Settings.max_steps, 1, 1_000_000),
        handoff_ttl_min=_float(env, "FLOW_ENGINE_HANDOFF_TTL_MIN", Settings.handoff_ttl_min, 0.001, 366 * 24 * 60),
    )


def _address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return value == "localhost"
    return True


_current: Settings | None = None


def get() -> Settings:
    """The process's settings, read once."""
    global _current
    if _current is None:
        _current = load()
    return _current
