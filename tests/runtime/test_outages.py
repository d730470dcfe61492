"""Outages under load: Redis connections killed again and again, Redis paused, PostgreSQL stopped
for 15 s. Nothing is lost: every message is answered after the outage or sits in the DLQ with
max-retries-exceeded, and `flow-engine dlq replay --all` then answers it, with no duplicates."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from flow_engine.adapters.keys import DLQ
from tests.devstack import Stack
from tests.runtime.conftest import new_org

FLOW_ENGINE = str(Path(sys.executable).parent / "flow-engine")
ECHO = {"nodes": [], "paths": {"path_default": [{"type": "action", "action": "send_text", "text": "ok"}]}}


@pytest.fixture(scope="module")
def stack(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(redis_url, database_url, tmp_path_factory.mktemp("logs"),
              env={"FLOW_ENGINE_MAX_RETRIES": "2", "FLOW_ENGINE_RETRY_BACKOFF_MS": "200"})
    s.start()
    yield s
    s.stop()


def retrying(action: Callable[[], Any]) -> Any:
    """The test's own Redis calls outlive the connection kills it causes."""
    for _ in range(50):
        try:
            return action()
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(0.1)
    raise AssertionError("Redis stayed unreachable")


def produce(stack: Stack, org: str, count: int, seconds: float) -> list[tuple[str, str]]:
    """Send `count` messages over `seconds`; a retried send keeps its WhatsApp id (Meta's duplicate)."""
    sent = []
    for n in range(count):
        contact, text = f"52155{n % 50:05d}", f"m{n}"
        retrying(functools.partial(stack.send, org, contact, text, wamid=f"wamid.{org}.{n}"))
        sent.append((contact, text))
        time.sleep(seconds / count)
    return sent


def settle_and_replay(stack: Stack, org: str, sent: list[tuple[str, str]]) -> int:
    """Wait for the engine, replay the DLQ, and check every message was answered exactly once."""
    retrying(lambda: stack.settled(timeout_s=60))
    dead = len(stack.stream(DLQ, org))
    assert {e["error"] for e in stack.stream(DLQ, org)} <= {"max-retries-exceeded"}
    env = stack["bridge0"].env
    replay = subprocess.run([FLOW_ENGINE, "dlq", "replay", "--all"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert replay.returncode == 0, replay.stderr
    stack.wait_outbox(org, len(sent), timeout_s=60)
    stack.settled()
    outbox = stack.outbox(org)
    assert sorted((e["to"], e["orig_text"]) for e in outbox) == sorted(sent)
    assert len({e["client_id"] for e in outbox}) == len(outbox) == len(sent)
    assert stack.stream(DLQ, org) == []
    return dead


def test_redis_connections_killed_and_redis_paused_under_load(stack: Stack) -> None:
    org = new_org()
    stack.load_flow(org, ECHO)
    admin: Any = redis.Redis.from_url(stack["bridge0"].env["REDIS_URL"])
    done = threading.Event()
    kills = {"n": 0}

    def chaos() -> None:
        paused = False
        while not done.is_set():
            with contextlib.suppress(redis.RedisError):
                kills["n"] += int(admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
                kills["n"] += int(admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub", "SKIPME", "yes"))
                if not paused and kills["n"] > 20:
                    try:
                        admin.execute_command("DEBUG", "SLEEP", "2")
                    except redis.ResponseError:  # DEBUG is disabled on this server: the same pause
                        admin.execute_command("CLIENT", "PAUSE", "2000", "ALL")
                    paused = True
            time.sleep(0.3)

    killer = threading.Thread(target=chaos)
    killer.start()
    try:
        sent = produce(stack, org, 400, 6)
    finally:
        done.set()
        killer.join()
    assert kills["n"] > 20
    dead = settle_and_replay(stack, org, sent)
    print("outage:", json.dumps({"kind": "redis", "messages": len(sent), "connections_killed": kills["n"],
                                 "dead_lettered_then_replayed": dead, "lost": 0, "duplicated": 0}))
    assert all(p.proc is not None and p.proc.poll() is None for p in stack.processes.values())


def pg(action: str) -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True,
                   capture_output=True, timeout=60)


@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir(),
                    reason="needs the machine's PostgreSQL cluster (pg_ctlcluster) to stop and start it")
def test_postgresql_stopped_for_15_seconds_under_load(stack: Stack) -> None:
    org = new_org()
    stack.load_flow(org, ECHO)
    stack.send(org, "5215550000", "warm-up")
    stack.wait_outbox(org, 1)

    def outage() -> None:
        time.sleep(3)
        pg("stop")
        try:
            time.sleep(15)
        finally:
            pg("start")

    stopper = threading.Thread(target=outage)
    stopper.start()
    try:
        sent = [("5215550000", "warm-up"), *produce(stack, org, 300, 22)]
    finally:
        stopper.join()
    dead = settle_and_replay(stack, org, sent)
    assert dead > 0, "the outage should have sent some events to the DLQ"
    print("outage:", json.dumps({"kind": "postgresql-15s", "messages": len(sent), "dead_lettered_then_replayed": dead,
                                 "lost": 0, "duplicated": 0}))
