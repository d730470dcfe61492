"""The engine's real processes for a benchmark: a started `tests.devstack.Stack` (1 bridge, 1 timer
loop, 1 Celery worker with prefork -c 2) on a fresh PostgreSQL database (created and migrated as the
tests' fixtures do, dropped in the end) and Redis database BENCH_REDIS_DB (default 2, flushed before
and after), the shop demo flow (examples/flows/shop_demo.json) active for org "bench". Process logs
of the last run are kept in bench/results/runtime-logs/."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.interpreter import _git_commit
from bench.workload import CHANNEL, FLOW_FILE, ORG, ROOT
from flow_engine import settings as settings_module
from flow_engine.adapters.keys import OUTBOX
from tests.devstack import BIN, Process, Stack, flushed_redis, free_port, fresh_database, poll_until

LOG_DIR = Path(__file__).resolve().parent / "results" / "runtime-logs"
REDIS_BASE = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
DRAIN_POLL_S = 0.010


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def flower_available() -> bool:
    return importlib.util.find_spec("flower") is not None


@contextmanager
def fresh_stack(label: str, *, env: dict[str, str] | None = None, task_events: bool = False,
                flower: bool = False) -> Iterator[Stack]:
    """A started Stack on a fresh PostgreSQL database and a flushed Redis DB, the shop demo active for ORG;
    stopped, dropped and flushed in the end whatever happens. `env` overrides the stack's environment;
    `task_events` starts the worker with `-E` (Celery task events, Flower's live view) and `flower` a real
    Flower process consuming them."""
    log_dir = LOG_DIR / label
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    with flushed_redis(f"{REDIS_BASE}/{env_int('BENCH_REDIS_DB', 2)}") as redis_url, \
            fresh_database(PG_ADMIN, prefix="fe_bench_") as database_url:
        stack = Stack(redis_url, database_url, log_dir, env=env)
        try:
            if task_events:
                stack["worker0"].argv.append("-E")
            if flower:
                port = free_port()
                stack.processes["flower"] = Process(
                    "flower", [str(BIN / "celery"), "-A", "flow_engine", "flower", f"--port={port}",
                               "--address=127.0.0.1"], stack["worker0"].env, log_dir)
            stack.load_flow(ORG, json.loads(FLOW_FILE.read_text()), name="shop_demo")
            stack.start()
            if flower:
                stack.wait_until(lambda: listening(port), 30, "Flower to listen")
            warm_up(stack)
            yield stack
        finally:
            stack.stop()


def warm_up(stack: Stack, messages: int = 8) -> None:
    """Messages through the whole path (bridge, both worker children, commit) before anything is timed."""
    before = stack.redis.xlen(OUTBOX)
    for i in range(messages):
        stack.send(ORG, f"warmup{i}", f"consulta de calentamiento {i}", channel=CHANNEL)
    stack.wait_outbox(ORG, before + messages, timeout_s=60)
    stack.settled(timeout_s=60)


def wait_for(condition: Callable[[], Any], timeout_s: float, poll_s: float, what: str, stack: Stack) -> float:
    """Poll `condition` until true; returns the perf_counter time it was first seen true."""
    return poll_until(condition, timeout_s, what, poll_s=poll_s, details=stack.logs).at


def setup_info(other_share: float) -> dict[str, Any]:
    conf = settings_module.load()
    return {
        "flow": str(FLOW_FILE.relative_to(ROOT)),
        "processes": "1 bridge, 1 timer loop, 1 Celery worker prefork -c 2 (tests.devstack.Stack defaults)",
        "lanes": conf.lanes,
        "read_batch": conf.read_batch,
        "lane_batch": conf.lane_batch,
        "cpus": os.cpu_count(),
        "other_processes_cpu_share": other_share,
        "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "git_commit": _git_commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
