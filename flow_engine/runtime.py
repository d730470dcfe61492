"""The worker side: drain a lane — load state, run the interpreter, write the database, then commit
the Redis effects and remove the events in one fenced script (DESIGN §2 invariants 2, 3, 6)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

from flow_engine import metrics
from flow_engine.adapters import held, lanes
from flow_engine.adapters.db import make_engine
from flow_engine.adapters.dlq import dlq_entry
from flow_engine.adapters.effects import Op, load_wait, outcome_ops
from flow_engine.adapters.keys import DLQ, STATS, TIMER_WAKE, Keys
from flow_engine.adapters.scripts import Scripts, connect
from flow_engine.adapters.store import Applied, FlowCache, StoredContact, apply_outcomes, load_contacts
from flow_engine.clock import now_ms
from flow_engine.core.control import Control
from flow_engine.core.conversation import handle
from flow_engine.core.ids import derive
from flow_engine.core.inbound import Event, Message
from flow_engine.core.outcome import AttributeWrite, Outcome, WaitState
from flow_engine.settings import Settings

log = logging.getLogger("flow_engine.runtime")



class LaneFailure(Exception):
    """Processing the lane's head event failed (transiently, as far as we know)."""

    def __init__(self, cause: BaseException, progressed: bool) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.progressed = progressed  # events before the failing one were committed


class Runtime:
    """Per-process connections and caches, created after fork (one per worker child)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = connect(settings.redis_url)
        self.scripts = Scripts(self.redis)
        self.keys = Keys.of(settings)
        self.engine = make_engine(settings.database_url)
        self.flows = FlowCache(self.engine, settings.flow_cache_s)
        self.control = Control.of(settings.max_steps, settings.run_expire_min, settings.interrupt_words,
                                  settings.max_held)

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()

    # -- draining -------------------------------------------------------------------------------------

    def drain(self, lane: int, budget_s: float = 2.0) -> str:
        """Process the lane until it is empty ("empty"), the budget is spent ("yield": call again),
        another worker holds it ("busy"), or the lane was taken over ("lost")."""
        token = uuid.uuid4().hex
        lock = Keys.lane_lock(lane)
        if not self.redis.set(lock, token, nx=True, px=self.settings.lock_ttl_ms):
            return "busy"
        deadline = time.monotonic() + budget_s
        progressed = False
        singles = 0  # after a failed batch, its events run one at a time: a failure is the head's
        try:
            while True:
                raw = self.redis.lrange(Keys.lane(lane), 0, (1 if singles else self.settings.lane_batch) - 1)
                try:
                    left = self._process(lane, token, raw)
                except Exception:
                    if len(raw) <= 1:
                        raise
                    singles = len(raw)
                    continue
                singles = max(singles - 1, 0)
                if left < 0:
                    return "lost"
                progressed = progressed or bool(raw)
                if left == 0:
                    return "empty"
                if time.monotonic() > deadline:
                    return "yield"
        except Exception as exc:
            raise LaneFailure(exc, progressed) from exc
        finally:
            with contextlib.suppress(Exception):  # Redis is down: the lock expires by itself
                self.scripts.release(keys=[lock], args=[token])

    def _process(self, lane: int, token: str, raw: list[str]) -> int:
        """Run `raw` (the lane's head) and commit; returns the events left, or -1 if fenced out."""
        started = time.perf_counter()
        ops: list[Op] = []
        timestamp = now_ms()
        work = [(item, item.event) for item in map(lanes.decode, raw)]
        waits = self._waits([event for _, event in work])
        held_items = held.load(self.redis, waits)
        contacts: dict[tuple[str, str], StoredContact] = {}
        for org_id in {event.org_id for _, event in work}:
            phones = {event.contact for _, event in work if event.org_id == org_id}
            for phone, stored in load_contacts(self.engine, org_id, phones).items():
                contacts[(org_id, phone)] = stored
        applied: list[Applied] = []
        handled: list[tuple[lanes.Item, Event]] = []  # per outcome: a released held message is its own item
        for item, event, outcome in self._handled(work, waits, held_items, contacts, timestamp, ops):
            who = (event.org_id, event.channel_id, event.contact)
            stored = contacts[(event.org_id, event.contact)]
            waits[who] = outcome.wait_after
            writes = {w.key: w.value for w in outcome.effects if isinstance(w, AttributeWrite)}
            if writes or outcome.contact_name:
                contact = stored.contact
                stored.contact = replace(contact, attributes={**contact.attributes, **writes},
                                         name=outcome.contact_name or contact.name)
            applied.append(Applied(event.org_id, event.channel_id, event.contact, outcome))
            handled.append((item, event))
            ops.extend(outcome_ops(self.keys, event, outcome))
            if outcome.failure is not None:
                ops.append(["x", DLQ, dlq_entry(
                    lanes.source_fields(self.redis, item), error=outcome.failure.code, detail=outcome.failure.detail,
                    retries=0, source_id=item.stream_id, failed_at_ms=timestamp, event_index=item.index,
                    event_key=event.key)])
        apply_outcomes(self.engine, applied, contacts)  # idempotent, so it may run again after a crash
        left = self._commit(lane, token, len(raw), ops, timestamp)
        if left >= 0:
            _count(handled, applied, ops, started)
            _log(handled, applied)
        return left

    def _handled(
        self, work: list[tuple[lanes.Item, Event]], waits: dict[held.Who, WaitState | None],
        held_items: dict[held.Who, list[lanes.Item]], contacts: dict[tuple[str, str], StoredContact],
        timestamp: int, ops: list[Op],
    ) -> Iterator[tuple[lanes.Item, Event, Outcome]]:
        """Each lane event with its outcome, followed by the held messages it releases with theirs
        (SPEC §5.1); holding and releasing add their ops. Lazy: the caller records each outcome (wait,
        contact) before the next event is decided."""
        for item, event in work:
            who = (event.org_id, event.channel_id, event.contact)
            queue = held_items[who]
            outcomes = handle(event, waits.get(who), [i.event for i in queue if isinstance(i.event, Message)],
                              contacts[(event.org_id, event.contact)].contact, timestamp, self.flows,
                              control=self.control, fallback_language=self.settings.fallback_language)
            for outcome in outcomes:
                current = item
                if outcome.released:
                    current = queue.pop(0)
                    ops.append(held.release_op(who))
                elif outcome.hold:
                    queue.append(item)
                    ops.append(held.hold_op(who, item))
                yield current, current.event, outcome

    def _waits(self, events: list[Event]) -> dict[tuple[str, str, str], WaitState | None]:
        who = sorted({(e.org_id, e.channel_id, e.contact) for e in events})
        if not who:
            return {}
        raw = self.redis.mget([self.keys.wait(*w) for w in who])
        return {w: load_wait(value) for w, value in zip(who, raw, strict=True)}

    def _commit(self, lane: int, token: str, count: int, ops: list[Op], timestamp: int) -> int:
        left = self.scripts.commit(
            keys=[Keys.lane(lane), Keys.lane_lock(lane), Keys.lane_armed(lane), self.keys.timers, STATS],
            args=[token, count, self.settings.lock_ttl_ms, timestamp, TIMER_WAKE,
                  json.dumps(ops, ensure_ascii=False, separators=(",", ":"))],
        )
        return int(left)

    # -- failures -------------------------------------------------------------------------------------

    def dead_letter_head(self, lane: int, detail: str, retries: int) -> bool:
        """Move the lane's head event to the DLQ (`max-retries-exceeded`) so the lane moves on."""
        token = uuid.uuid4().hex
        lock = Keys.lane_lock(lane)
        if not self.redis.set(lock, token, nx=True, px=self.settings.lock_ttl_ms):
            return False
        try:
            head = self.redis.lrange(Keys.lane(lane), 0, 0)
            if not head:
                self._commit(lane, token, 0, [], now_ms())
                return False
            item = lanes.decode(head[0])
            entry = dlq_entry(lanes.source_fields(self.redis, item), error="max-retries-exceeded", detail=detail,
                              retries=retries, source_id=item.stream_id, failed_at_ms=now_ms(), event_index=item.index,
                              event_key=item.event.key)
            self._commit(lane, token, 1, [["x", DLQ, entry]], now_ms())
            return True
        finally:
            self.scripts.release(keys=[lock], args=[token])

    def hold_off(self, lane: int, until_ms: int) -> None:
        """A retry of the lane is scheduled for `until_ms`: the stall sweep counts from then."""
        self.redis.set(Keys.lane_armed(lane), until_ms)


def _count(work: list[tuple[lanes.Item, Event]], applied: list[Applied], ops: list[Op], started: float) -> None:
    """Metrics of one committed batch."""
    written_ms = now_ms()
    # A released held message was counted in when it was held.
    metrics.incoming_processed.inc(sum(1 for (_item, event), done in zip(work, applied, strict=True)
                                       if isinstance(event, Message) and not done.outcome.released))
    metrics.outbox_published.inc(sum(len(a.outcome.outbox) for a in applied))
    metrics.webhooks_published.inc(sum(len(a.outcome.webhooks) for a in applied))
    metrics.scheduled.inc(sum(len(a.outcome.timers_add) for a in applied))
    metrics.held.inc(sum(1 for a in applied if a.outcome.hold))
    for done in applied:
        if done.outcome.ignored:
            metrics.ignored.labels(done.outcome.ignored).inc()
    for (item, _event), done in zip(work, applied, strict=True):
        if done.outcome.outbox:
            metrics.latency_seconds.observe(max(written_ms - stream_ms(item.stream_id), 0) / 1000)
    for op in ops:
        if op[0] == "x" and op[1] == DLQ:
            error = op[2][op[2].index("error") + 1]
            metrics.dlq.labels(error).inc()
            metrics.errors.labels(error).inc()
    metrics.processing_seconds.observe(time.perf_counter() - started)


def _log(work: list[tuple[lanes.Item, Event]], applied: list[Applied]) -> None:
    """Failed runs at WARNING, every event at DEBUG; ids only, never texts or phone numbers."""
    debug = log.isEnabledFor(logging.DEBUG)
    for (_item, event), done in zip(work, applied, strict=True):
        outcome = done.outcome
        if outcome.failure is None and not debug:
            continue
        ids = {"org_id": event.org_id, "run_id": outcome.run.id if outcome.run else None,
               "event_id": event.key, "trace_id": derive(event.key, "trace")}
        if outcome.failure is not None:
            log.warning("run failed, event dead-lettered: %s", outcome.failure.code, extra=ids)
        else:
            log.debug("event processed: %s outbox, %s webhooks%s", len(outcome.outbox), len(outcome.webhooks),
                      f", ignored ({outcome.ignored})" if outcome.ignored else "", extra=ids)


def stream_ms(stream_id: str) -> int:
    """The time part of a stream id (when the entry was added)."""
    return int(stream_id.split("-", 1)[0])


_runtime: Runtime | None = None


def runtime(settings: Settings) -> Runtime:
    """The process's runtime; `reset()` after fork so no connection is shared with the parent."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(settings)
    return _runtime


def reset() -> None:
    global _runtime
    _runtime = None


