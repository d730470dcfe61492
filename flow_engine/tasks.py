"""Celery tasks: thin — drain a lane, and on failure retry with backoff, then dead-letter its head."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from flow_engine import metrics
from flow_engine import settings as settings_module
from flow_engine.adapters.keys import BUSY_LANES_QUEUE, NEW_LANES_QUEUE, Keys
from flow_engine.adapters.schema import SchemaError
from flow_engine.adapters.scripts import connect
from flow_engine.celery import app
from flow_engine.clock import now_ms
from flow_engine.runtime import LaneFailure, runtime

log = logging.getLogger("flow_engine.tasks")
MAX_BACKOFF_MS = 30_000
SCHEMA_RETRY_MS = 30_000  # a database without the engine's schema: its events wait for `db upgrade`


def backoff_ms(attempt: int) -> int:
    """Delay before retry `attempt` (1, 2, ...): doubling from FLOW_ENGINE_RETRY_BACKOFF_MS, capped."""
    return int(min(settings_module.get().retry_backoff_ms * 2 ** (attempt - 1), MAX_BACKOFF_MS))


@app.task(bind=True, name="flow_engine.process_lane", max_retries=None, acks_late=True)
def process_lane(self: Any, lane: str, attempt: int = 0) -> str:
    """Process lane `lane` until it is empty. `attempt` counts failures of its current head event."""
    settings = settings_module.get()
    try:
        rt = runtime(settings)
    except SchemaError as exc:
        return _wait_for_schema(self, lane, attempt, str(exc))
    try:
        result = rt.drain(lane, budget_s=settings.task_budget_ms / 1000)
    except LaneFailure as failure:
        metrics.errors.labels("transient").inc()
        attempt = 1 if failure.progressed else attempt + 1
        if attempt > settings.max_retries and (problem := rt.schema_problem()):
            return _wait_for_schema(self, lane, attempt - 1, problem)
        if attempt > settings.max_retries:
            log.warning("lane %s: head event failed %s times, to the DLQ: %s", lane, attempt, failure,
                        extra={"lane": lane})
            rt.dead_letter_head(lane, failure.detail, retries=attempt - 1)
            enqueue(lane)
            return "dead-lettered"
        delay_ms = backoff_ms(attempt)
        log.info("lane %s: retry %s in %s ms: %s", lane, attempt, delay_ms, failure, extra={"lane": lane})
        with contextlib.suppress(Exception):  # Redis is down: the sweep re-arms the lane later
            rt.hold_off(lane, now_ms() + delay_ms)
        metrics.retries.inc()
        raise self.retry(args=(lane, attempt), countdown=delay_ms / 1000, argsrepr=f"lane {lane}, retry {attempt}") \
            from None
    if result == "yield":
        enqueue(lane)
    # "busy": another worker holds the lane and drains it. Were that worker dead, its lock expires
    # and the timer loop's sweep re-arms the lane.
    return result


def _wait_for_schema(task: Any, lane: str, attempt: int, problem: str) -> str:
    """The database lacks the engine's schema: not the events' fault, so none is dead-lettered; the
    lane is tried again until someone runs `flow-engine db upgrade`."""
    log.error("lane %s waits: %s", lane, problem, extra={"lane": lane})
    # Armed until then, so the stall sweep does not start a second task meanwhile.
    with contextlib.suppress(Exception), connect(settings_module.get().redis_url) as client:
        client.set(Keys.lane_armed(lane), now_ms() + SCHEMA_RETRY_MS)
    raise task.retry(args=(lane, attempt), countdown=SCHEMA_RETRY_MS / 1000, argsrepr=f"lane {lane}, schema") \
        from None


def enqueue(lane: str, *, new: bool = False) -> None:
    """Start a task for `lane` (named readably in Flower). A lane that was idle (`new`) goes to the
    queue consumed first; a lane that used up its turn goes behind the others' turns."""
    process_lane.apply_async((lane,), queue=NEW_LANES_QUEUE if new else BUSY_LANES_QUEUE, argsrepr=f"lane {lane}")
