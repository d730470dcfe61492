"""The timer loop: moves due timers from the ZSET into nf:incoming (atomic pop-and-publish), sleeps
until the earliest timer (at most FLOW_ENGINE_SCHED_POLL_MS) and wakes early when an earlier one is
added. It also re-arms lanes left holding events without a worker (a crash between arming and running)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flow_engine import metrics, ops
from flow_engine.adapters.keys import INCOMING, LANE_PREFIX, LANES, SECRET, TIMER_WAKE, Keys
from flow_engine.adapters.retention import trim_streams
from flow_engine.adapters.scripts import Scripts, connect
from flow_engine.adapters.signing import load_secret
from flow_engine.clock import now_ms
from flow_engine.errors import SecretMissing
from flow_engine.outages import run_until_stopped
from flow_engine.settings import Settings

log = logging.getLogger("flow_engine.scheduler")
BATCH = 1000  # timers moved per script call, so one call never blocks Redis for long
SWEEP_EVERY_MS = 1000



@dataclass(frozen=True)
class Tick:
    moved: int
    next_due_ms: int | None
    lateness_ms: tuple[int, ...]
    rearmed: tuple[str, ...]


class TimerLoop:
    def __init__(self, settings: Settings, enqueue: Callable[[str, bool], Any]) -> None:
        self.settings = settings
        self.enqueue = enqueue
        self.redis = connect(settings.redis_url)
        self.scripts = Scripts(self.redis)
        self.keys = Keys.of(settings)
        self.last_sweep_ms = 0
        self.last_trim_ms = 0

    def tick(self, now: int) -> Tick:
        """One iteration at time `now` (ms): publish due timers, sweep lanes when it is time."""
        try:
            result = self.scripts.pop_due(keys=[self.keys.timers, INCOMING, SECRET], args=[now, BATCH])
        except SecretMissing:
            load_secret(self.redis)  # first start on this Redis (or the key was deleted): create it
            result = self.scripts.pop_due(keys=[self.keys.timers, INCOMING, SECRET], args=[now, BATCH])
        moved, next_due = int(result[0]), result[1]
        lateness = tuple(int(x) for x in result[2:])
        metrics.sched_published.inc(moved)
        for late_ms in lateness:
            metrics.timer_lateness_seconds.observe(late_ms / 1000)
        rearmed: tuple[str, ...] = ()
        if now - self.last_sweep_ms >= SWEEP_EVERY_MS:
            self.last_sweep_ms = now
            stalled = self.scripts.sweep(keys=[LANES], args=[LANE_PREFIX, now, self.settings.stall_ms])
            rearmed = tuple(stalled)
            for lane in rearmed:
                log.info("lane %s holds events without a worker: re-armed", lane)
                self.enqueue(lane, False)  # a safety net: behind the conversations, in turn
            self.update_gauges()
        if now - self.last_trim_ms >= self.settings.trim_every_ms:
            self.last_trim_ms = now
            removed = trim_streams(self.scripts, now, retention_s=self.settings.stream_retention_s,
                                   maxlen=self.settings.stream_maxlen)
            for stream, count in removed.items():
                metrics.stream_trimmed.labels(stream).inc(count)
        return Tick(moved, int(float(next_due)) if next_due else None, lateness, rearmed)

    def update_gauges(self) -> None:
        """Backlog, pending waits and scheduled timers, for the whole engine (one Redis round trip)."""
        state = ops.status(self.settings, self.redis, workers=None)
        metrics.backlog.set((state.group_lag or 0) + state.pending + state.inbox_backlog + state.lanes_backlog)
        metrics.pending_waits.set(state.waits)
        metrics.scheduled_items.set(state.scheduled)
        metrics.bridge_lease_held.set(1 if state.bridge else 0)
        metrics.lane_events.set(state.lanes_backlog)
        metrics.inbox_entries.set(state.inbox_backlog)
        metrics.busy_lanes.set(state.busy_lanes)
        for stream, facts in state.streams.items():
            metrics.stream_length.labels(stream).set(facts["length"] or 0)

    def sleep_ms(self, tick: Tick, now: int) -> int:
        if tick.moved >= BATCH:
            return 0
        longest = self.settings.sched_poll_ms
        return longest if tick.next_due_ms is None else max(0, min(longest, tick.next_due_ms - now))

    def run(self, stop: threading.Event) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)

        def iteration() -> None:
            if not pubsub.subscribed:
                pubsub.subscribe(TIMER_WAKE)
            now = now_ms()
            tick = self.tick(now)
            wait_ms = self.sleep_ms(tick, now)
            if wait_ms > 0:
                pubsub.get_message(timeout=wait_ms / 1000)  # returns early when a worker adds an earlier timer

        run_until_stopped(stop, iteration, what="timer loop", log=log, after_outage=pubsub.reset)
        pubsub.close()
