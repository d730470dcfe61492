"""The naive baseline's Celery app: the "original" design, one Celery task per inbound message.

`celery -A bench.naive worker -c 2` runs it (bench/baselines.py starts it, and plays its bridge). The
task does the engine's pure work for one nf:incoming entry — `parse_entry`, `interpret` on the shop
demo with no wait state and an empty contact — and XADDs the outbox entries; it keeps no wait state,
no timers and writes no database, so it is cheaper per message than the engine (the ratio is
conservative). Celery settings are the engine's (celeryconfig.py): late acks, requeue when a child
dies, prefetch 1, no results, JSON.

Everything lives in its own Redis database, BENCH_NAIVE_REDIS_URL (default redis://127.0.0.1:6379/3):
the broker (queue "naive") and the streams, so it never meets the engine's keys.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from flow_engine.adapters.keys import OUTBOX
from flow_engine.core.graph import Flow, parse_flow
from flow_engine.core.inbound import parse_entry
from flow_engine.core.interpreter import interpret
from flow_engine.core.outcome import Contact

REDIS_URL = os.environ.get("BENCH_NAIVE_REDIS_URL", "redis://127.0.0.1:6379/3")
FLOW_FILE = Path(__file__).resolve().parent.parent / "examples" / "flows" / "shop_demo.json"
QUEUE = "naive"

app = Celery("bench_naive", broker=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

_state: dict[str, Any] = {}  # per process, filled on first use (so after the prefork children forked)


def _flow() -> Flow:
    if "flow" not in _state:
        _state["flow"] = parse_flow(json.loads(FLOW_FILE.read_text()), flow_id="shop_demo", version=1)
    flow: Flow = _state["flow"]
    return flow


def _redis() -> Any:
    if "redis" not in _state:
        _state["redis"] = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    return _state["redis"]


@app.task(name="naive.process_message")  # type: ignore[untyped-decorator]
def process_message(stream_id: str, fields: dict[str, str]) -> None:
    """One message: parse, interpret, XADD what to send."""
    flow = _flow()
    pipe = _redis().pipeline(transaction=False)
    for event in parse_entry(stream_id, fields):
        outcome = interpret(flow, event, None, Contact(event.contact), time.time_ns() // 1_000_000)
        for message in outcome.outbox:
            pipe.xadd(OUTBOX, message.fields())
    pipe.execute()
