"""The engine's processes started as subprocesses, the way an operator starts them: for the
end-to-end tests and the benchmarks (bridge, timer loop and Celery workers against one Redis and
one database)."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import text

from flow_engine.adapters.db import make_engine
from flow_engine.adapters.keys import INCOMING, OUTBOX
from flow_engine.adapters.store import store_flow

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


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
            self.wait_until(lambda: self.redis.exists("fe:bridge:lease") == 1, 20, "a bridge to lead")
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
        message = {"from": phone, "id": wamid or f"wamid.{uuid.uuid4().hex}", "timestamp": "1764072000",
                   "type": "text", "text": {"body": text}}
        payload = {"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
                   "value": {"metadata": {"phone_number_id": channel}, "contacts": [{"wa_id": phone}],
                             "messages": [message]}}]}]}
        return {"source": "test", "org_id": org, "channel_id": channel, "payload": json.dumps(payload)}

    def outbox(self, org: str | None = None) -> list[dict[str, str]]:
        entries = [fields for _id, fields in self.redis.xrange(OUTBOX)]
        return [e for e in entries if org is None or e["org_id"] == org]

    def stream(self, name: str, org: str | None = None) -> list[dict[str, str]]:
        entries = [fields for _id, fields in self.redis.xrange(name)]
        return [e for e in entries if org is None or e.get("org_id") == org]

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def wait_until(self, condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{self.logs()}")

    def wait_outbox(self, org: str, count: int, timeout_s: float = 15) -> list[dict[str, str]]:
        self.wait_until(lambda: len(self.outbox(org)) >= count, timeout_s, f"{count} outbox entries of {org}")
        return self.outbox(org)

    def settled(self, timeout_s: float = 20) -> None:
        """Wait until nothing is pending: stream read and acked, lanes empty."""
        def idle() -> bool:
            pending = self.redis.xpending("nf:incoming", "engine")["pending"]
            lanes = [k for k in self.redis.scan_iter("fe:lane:*") if not k.endswith((":lock", ":armed"))]
            lag = self.redis.xinfo_groups("nf:incoming")[0].get("lag")
            return pending == 0 and not any(self.redis.llen(k) for k in lanes) and not lag
        self.wait_until(idle, timeout_s, "the engine to settle")


def _ready(worker: Process) -> bool:
    return " ready." in worker.log()
