"""Test and benchmark harness, not shipped: the engine's processes started as subprocesses, the way an
operator starts them (bridge, timer loop and Celery workers against one Redis and one database), and
`poll_until`, the one way the end-to-end tests and the benchmarks wait for something."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from flow_engine import ops
from flow_engine.adapters.db import make_engine
from flow_engine.adapters.keys import BRIDGE_LEASE, INCOMING, OUTBOX
from flow_engine.adapters.migrate import upgrade
from flow_engine.adapters.store import store_flow
from flow_engine.core.whatsapp import text_message_entry
from flow_engine.settings import load as load_settings

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TimedOut(AssertionError):
    """A condition polled by `poll_until` did not come true in time."""


class Seen(NamedTuple):
    value: Any  # what the condition returned
    at: float  # time.perf_counter() just before the call that returned it


def poll_until(condition: Callable[[], Any], timeout_s: float, what: str, *, poll_s: float = 0.02,
               details: Callable[[], str] | None = None) -> Seen:
    """Call `condition` every `poll_s` until it returns a true value; TimedOut names `what` (and adds
    `details()`, e.g. the processes' logs) after `timeout_s`."""
    deadline = time.perf_counter() + timeout_s
    while True:
        now = time.perf_counter()
        value = condition()
        if value:
            return Seen(value, now)
        if now > deadline:
            more = "" if details is None else f"\n{details()}"
            raise TimedOut(f"timed out after {timeout_s:.0f} s waiting for {what}{more}")
        time.sleep(poll_s)


def patiently(cleanup: Callable[[], Any], attempts: int = 15) -> None:
    """Run a clean-up step, retrying for a while: Redis or PostgreSQL may be restarting (the outage
    tests restart them), and a database left behind would pile up."""
    for attempt in range(attempts):
        try:
            cleanup()
            return
        except (redis.RedisError, SQLAlchemyError):
            if attempt == attempts - 1:
                raise
            time.sleep(1)


@contextmanager
def fresh_database(admin_url: str, prefix: str = "fe_test_") -> Iterator[str]:
    """The URL of a new PostgreSQL database on the server of `admin_url`, migrated with the project's
    Alembic migration; dropped in the end whatever happens."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)  # PostgreSQL may restart

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        upgrade(url)
        yield url
    finally:
        patiently(drop)
        admin.dispose()


@contextmanager
def flushed_redis(url: str) -> Iterator[str]:
    """A Redis database emptied before and after use."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        patiently(client.flushdb)
        client.close()


class Process:
    """One engine process, started as a user starts it, with its output kept in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the whole process group (a Celery worker and its children) at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, sig: int = signal.SIGKILL) -> None:
        self.kill(sig)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Stack:
    """Bridge, timer loop and worker(s) against one Redis database and one PostgreSQL database."""

    def __init__(self, redis_url: str, database_url: str, log_dir: Path, *, workers: int = 1,
                 concurrency: int = 2, bridges: int = 1, schedulers: int = 1, env: dict[str, str] | None = None):
        self.redis: Any = redis.Redis.from_url(redis_url, decode_responses=True)  # replies are str
        self.engine = make_engine(database_url)
        own = ("FLOW_ENGINE_METRICS_PORT", "PROMETHEUS_MULTIPROC_DIR")  # a stack's processes serve no metrics
        inherited = {k: v for k, v in os.environ.items() if k not in own}
        base = {**inherited, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
                "FLOW_ENGINE_LOCK_TTL_MS": "2000", "FLOW_ENGINE_STALL_MS": "1000",
                "FLOW_ENGINE_CLAIM_IDLE_MS": "2000", "FLOW_ENGINE_FLOW_CACHE_MS": "500",
                "FLOW_ENGINE_RETRY_BACKOFF_MS": "100", "LOG_LEVEL": "INFO", **(env or {})}
        self.group = load_settings(base).group
        celery = str(BIN / "celery")
        self.processes: dict[str, Process] = {}
        for n in range(workers):
            self.processes[f"worker{n}"] = Process(
                f"worker{n}",
                [celery, "-A", "flow_engine", "worker", "-c", str(concurrency), "-n", f"w{n}@%h", "--without-gossip",
                 "--without-mingle", "--without-heartbeat", "--loglevel=INFO"],
                base, log_dir)
        for n in range(bridges):
            self.processes[f"bridge{n}"] = Process(
                f"bridge{n}", [sys.executable, "-m", "bridge"], {**base, "FLOW_ENGINE_CONSUMER": f"bridge{n}"}, log_dir)
        for n in range(schedulers):
            self.processes[f"scheduler{n}"] = Process(
                f"scheduler{n}", [str(BIN / "flow-engine"), "scheduler"], base, log_dir)

    def __getitem__(self, name: str) -> Process:
        return self.processes[name]

    def start(self) -> None:
        for process in self.processes.values():
            process.start()
        if any(name.startswith("bridge") for name in self.processes):
            self.wait_until(lambda: self.redis.exists(BRIDGE_LEASE) == 1, 20, "a bridge to lead")
        for process in self.processes.values():
            if process.name.startswith("worker"):
                self.wait_until(functools.partial(_ready, process), 30, f"{process.name} to be ready")

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.engine.dispose()
        self.redis.close()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in self.processes.values())

    # -- driving --------------------------------------------------------------------------------------

    def load_flow(self, org: str, graph: Any, name: str = "flow") -> str:
        flow_id, _version, _stored = store_flow(self.engine, org, graph, name=name, activate=True, created_by="test")
        return flow_id

    def send_later(self, pipe: Any, org: str, phone: str, text: str, *, channel: str = "ch1") -> None:
        """Queue a send on a pipeline (its result is the entry id)."""
        pipe.xadd(INCOMING, self._entry(org, phone, text, None, channel))

    def send(self, org: str, phone: str, text: str, *, wamid: str | None = None, channel: str = "ch1") -> str:
        return str(self.redis.xadd(INCOMING, self._entry(org, phone, text, wamid, channel)))

    def _entry(self, org: str, phone: str, text: str, wamid: str | None, channel: str) -> dict[str, str]:
        return text_message_entry(org, channel, phone, text, wamid=wamid or f"wamid.{uuid.uuid4().hex}",
                                  timestamp_s=1764072000, source="test", ascii_json=True)

    def outbox(self, org: str | None = None) -> list[dict[str, str]]:
        entries = [fields for _id, fields in self.redis.xrange(OUTBOX)]
        return [e for e in entries if org is None or e["org_id"] == org]

    def stream(self, name: str, org: str | None = None) -> list[dict[str, str]]:
        entries = [fields for _id, fields in self.redis.xrange(name)]
        return [e for e in entries if org is None or e.get("org_id") == org]

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def wait_until(self, condition: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.02) -> Any:
        """What `condition` returned once true; the processes' logs in the error when it times out."""
        return poll_until(condition, timeout_s, what, poll_s=poll_s, details=self.logs).value

    def wait_outbox(self, org: str, count: int, timeout_s: float = 15) -> list[dict[str, str]]:
        self.wait_until(lambda: len(self.outbox(org)) >= count, timeout_s, f"{count} outbox entries of {org}")
        return self.outbox(org)

    def settled(self, timeout_s: float = 20) -> None:
        """Wait until nothing is pending: stream read and acked, lanes empty."""
        self.wait_until(lambda: ops.idle(self.redis, self.group), timeout_s, "the engine to settle")


def _ready(worker: Process) -> bool:
    return " ready." in worker.log()
