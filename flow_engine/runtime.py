"""The worker side: drain a lane — load state, run the interpreter, write the database, then commit
the Redis effects and remove the events in one fenced script (DESIGN §2 invariants 2, 3, 6)."""

from __future__ import annotations

import contextlib
import gc
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace

from flow_engine import metrics
from flow_engine.adapters import dedupe, held, lanes, legacy, nlp, schema
from flow_engine.adapters.db import make_engine
from flow_engine.adapters.dlq import dlq_entry
from flow_engine.adapters.effects import Op, load_wait, outcome_ops
from flow_engine.adapters.failures import dlq_text, is_permanent, log_text
from flow_engine.adapters.keys import (
    CONVERSING,
    CONVERSING_BATCH,
    CONVERSING_WITHIN_MS,
    DLQ,
    LANES,
    NEW_LANES_QUEUE,
    STATS,
    TIMER_WAKE,
    Keys,
)
from flow_engine.adapters.scripts import Scripts, connect
from flow_engine.adapters.store import Applied, FlowCache, StoredContact, apply_outcomes, load_contacts
from flow_engine.clock import now_ms
from flow_engine.core.control import Control
from flow_engine.core.conversation import handle
from flow_engine.core.ids import derive_own
from flow_engine.core.inbound import Event, Message, lane_key
from flow_engine.core.jsontext import compact
from flow_engine.core.outcome import Outcome, WaitState, apply_attribute_effects
from flow_engine.errors import LaneFailure as LaneFailure  # raised here; tasks.py imports it from here
from flow_engine.settings import Settings

log = logging.getLogger("flow_engine.runtime")
# Output of one commit script, at most (one event's may reach FLOW_ENGINE_MAX_OUTPUT_BYTES): a batch
# stops growing here, so no commit holds Redis for long (about 10 ms for 4 MiB).
COMMIT_BYTES = 4 * 1024 * 1024


class Runtime:
    """Per-process connections and caches, created after fork (one per worker child)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        # A missing table or column: SchemaError, and the task waits for `db upgrade` instead of failing
        # events. A database down now is an outage like any other: events are retried.
        with contextlib.suppress(schema.DatabaseUnreachable):
            schema.require(self.engine)
        self.redis = connect(settings.redis_url)
        self.scripts = Scripts(self.redis)
        self.keys = Keys.of(settings)
        self.flows = FlowCache(self.engine, settings.flow_cache_s)
        self.control = Control.of(settings.max_steps, settings.run_expire_min, settings.interrupt_words,
                                  settings.max_held, settings.handoff_ttl_min)
        self.new_lanes_queue = settings.broker_url == settings.redis_url
        self.nlp = nlp.Nlp(settings.nlp_url, settings.nlp_timeout_s, settings.nlp_min_score) if settings.nlp_url \
            else None
        # What exists now lives as long as the process (modules, the Celery app, SQLAlchemy's tables and
        # this runtime): moved out of the collector's sight once, instead of traversed again by every
        # older-generation collection that the garbage of the batches triggers (the collector took 4 %
        # of the worker's instructions, 1.5 % after). This start's own garbage is collected first.
        gc.collect()
        gc.freeze()

    def schema_problem(self) -> str | None:
        """Why the database cannot take this process's writes, when its schema is the cause."""
        try:
            schema.require(self.engine)
        except schema.DatabaseUnreachable:
            return None  # an outage: the event's retries count
        except schema.SchemaError as exc:
            return str(exc)
        return None

    def close(self) -> None:
        if self.nlp is not None:
            self.nlp.close()
        self.engine.dispose()
        self.redis.close()

    # -- draining -------------------------------------------------------------------------------------

    def drain(self, lane: str, budget_s: float = 2.0) -> str:
        """Process the lane until it is empty ("empty"), the budget is spent or a lane that was idle
        waits for a worker ("yield": call again), another worker holds it ("busy"), or the lane was
        taken over ("lost")."""
        token = uuid.uuid4().hex
        lock = Keys.lane_lock(lane)
        if not self.redis.set(lock, token, nx=True, px=self.settings.lock_ttl_ms):
            return "busy"
        deadline = time.monotonic() + budget_s
        progressed = False
        singles = 0  # after a failed batch, its events run one at a time: a failure is the head's
        try:
            while True:
                others = self.others_conversing(lane)
                size = self.settings.lane_batch if not others else min(self.settings.lane_batch, CONVERSING_BATCH)
                raw = self.redis.lrange(Keys.lane(lane), 0, (1 if singles else size) - 1)
                try:
                    left = self._process(lane, token, raw)
                except Exception as exc:
                    if len(raw) > 1:
                        singles = len(raw)
                        continue
                    if not is_permanent(exc):
                        raise
                    # The event's own data is at fault (a value its column refuses...): no retry can
                    # help, so it goes to the DLQ now and the lane goes on.
                    log.warning("lane %s: head event refused by the store, to the DLQ: %s", lane, log_text(exc),
                                extra={"lane": lane})
                    left = self._dead_letter(lane, token, raw[0], "data-error", dlq_text(exc), retries=0)
                singles = max(singles - 1, 0)
                if left < 0:
                    return "lost"
                progressed = progressed or bool(raw)
                if left == 0:
                    return "empty"
                if time.monotonic() > deadline or (others and self._new_lanes_waiting()):
                    return "yield"
        except Exception as exc:
            raise LaneFailure(exc, progressed) from exc
        finally:
            with contextlib.suppress(Exception):  # Redis is down: the lock expires by itself
                self.scripts.release(keys=[lock], args=[token])

    def others_conversing(self, lane: str) -> bool:
        """Whether an org other than `lane`'s is having conversations (the bridge armed a lane of it
        within CONVERSING_WITHIN_MS). Then this lane takes smaller batches (CONVERSING_BATCH) and gives
        up its turn when a lane that was idle waits; an org alone keeps full batches and its turn (its
        own lanes take turns by the time budget), so its messages are not sent to the back of the
        busy queue behind its own new lanes."""
        org = Keys.lane_org(lane)
        recent = self.redis.zrangebyscore(CONVERSING, now_ms() - CONVERSING_WITHIN_MS, "+inf", start=0, num=2)
        return any(other != org for other in recent)

    def _new_lanes_waiting(self) -> bool:
        """Whether a lane that was idle waits for a worker (another org's message): then a busy lane
        gives up its turn after the batch at hand, so the quiet one waits one batch at most. Known
        only when the Celery broker is this Redis (the queue is a list there); else turns are timed."""
        return self.new_lanes_queue and bool(self.redis.llen(NEW_LANES_QUEUE))

    def _process(self, lane: str, token: str, raw: list[str]) -> int:
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
        intents = self._intents(work, waits) if self.nlp is not None else {}
        applied: list[Applied] = []
        handled: list[tuple[lanes.Item, Event]] = []  # per outcome: a released held message is its own item
        batch = _Batch()
        for item, event, outcome in self._handled(work, waits, held_items, contacts, timestamp, ops, intents, batch):
            who = (event.org_id, event.channel_id, event.contact)
            stored = contacts[(event.org_id, event.contact)]
            waits[who] = outcome.wait_after
            if outcome.changes_contact or outcome.contact_name:
                contact = stored.contact
                attributes = apply_attribute_effects(contact.attributes, outcome.effects)
                stored.contact = replace(contact, attributes=attributes, name=outcome.contact_name or contact.name)
            applied.append(Applied(event.org_id, event.channel_id, event.contact, outcome))
            handled.append((item, event))
            ops.extend(outcome_ops(self.keys, event, outcome))
            if outcome.failure is not None:
                ops.append(["x", DLQ, dlq_entry(
                    lanes.source_fields(self.redis, item), error=outcome.failure.code, detail=outcome.failure.detail,
                    retries=0, source_id=item.stream_id, failed_at_ms=timestamp, event_index=item.index,
                    event_key=event.key)])
                ops.extend(_forget_seen(event, self.settings.dedupe_ttl_s))
        apply_outcomes(self.engine, applied, contacts)  # idempotent, so it may run again after a crash
        left = self._commit(lane, token, batch.events, ops, timestamp)
        if left >= 0:
            _count(handled, applied, ops, started)
            _log(handled, applied)
        return left

    def _handled(
        self, work: list[tuple[lanes.Item, Event]], waits: dict[held.Who, WaitState | None],
        held_items: dict[held.Who, list[lanes.Item]], contacts: dict[tuple[str, str], StoredContact],
        timestamp: int, ops: list[Op], intents: dict[str, str | None], batch: _Batch,
    ) -> Iterator[tuple[lanes.Item, Event, Outcome]]:
        """Each lane event with its outcome, followed by the held messages it releases with theirs
        (SPEC §5.1); holding and releasing add their ops. Lazy: the caller records each outcome (wait,
        contact) before the next event is decided. Stops taking events once the batch's outputs
        pass COMMIT_BYTES (`batch.events` says how many it took)."""
        for item, event in work:
            if batch.output_bytes > COMMIT_BYTES:  # the rest waits for the next batch
                return
            batch.events += 1
            who = (event.org_id, event.channel_id, event.contact)
            queue = held_items[who]
            outcomes = handle(event, waits.get(who), [i.event for i in queue if isinstance(i.event, Message)],
                              contacts[(event.org_id, event.contact)].contact, timestamp, self.flows,
                              control=self.control, fallback_language=self.settings.fallback_language,
                              intent=intents.get(event.key), max_outputs=self.settings.max_outputs,
                              max_output_bytes=self.settings.max_output_bytes)
            for outcome in outcomes:
                batch.output_bytes += outcome.output_chars
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
        return {w: self._wait(w, value) for w, value in zip(who, raw, strict=True)}

    def _intents(self, work: list[tuple[lanes.Item, Event]],
                 waits: dict[tuple[str, str, str], WaitState | None]) -> dict[str, str | None]:
        """The NLP service's intents for the messages that may enter a flow (their contact has no
        paused run), decided before any write and recorded, so a replay decides the same."""
        assert self.nlp is not None
        entering = [(event.key, event.text) for _item, event in work
                    if isinstance(event, Message) and event.text.strip() and waits.get(lane_key(event)) is None
                    and self.flows.active(event.org_id) is not None]
        return nlp.decide(self.redis, self.nlp, entering)

    def _wait(self, who: tuple[str, str, str], raw: str | None) -> WaitState | None:
        if raw is not None and legacy.is_legacy_wait(raw):  # left by the previous engine, not migrated
            return legacy.wait_of(raw, who, self.flows.active(who[0]))
        return load_wait(raw)

    def _commit(self, lane: str, token: str, count: int, ops: list[Op], timestamp: int) -> int:
        left = self.scripts.commit(
            keys=[Keys.lane(lane), Keys.lane_lock(lane), Keys.lane_armed(lane), self.keys.timers, STATS, LANES],
            args=[token, count, self.settings.lock_ttl_ms, timestamp, TIMER_WAKE,
                  compact(ops), lane],
        )
        return int(left)

    # -- failures -------------------------------------------------------------------------------------

    def _dead_letter(self, lane: str, token: str, raw: str, error: str, detail: str, retries: int) -> int:
        """Move the lane's head event `raw` to the DLQ with `error`; returns the events left (-1: fenced)."""
        item = lanes.decode(raw)
        entry = dlq_entry(lanes.source_fields(self.redis, item), error=error, detail=detail, retries=retries,
                          source_id=item.stream_id, failed_at_ms=now_ms(), event_index=item.index,
                          event_key=item.event.key)
        ops: list[Op] = [["x", DLQ, entry], *_forget_seen(item.event, self.settings.dedupe_ttl_s)]
        left = self._commit(lane, token, 1, ops, now_ms())
        if left >= 0:
            metrics.dlq.labels(error).inc()
            metrics.errors.labels(error).inc()
        return left

    def dead_letter_head(self, lane: str, detail: str, retries: int) -> bool:
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
            return self._dead_letter(lane, token, head[0], "max-retries-exceeded", detail, retries) >= 0
        finally:
            self.scripts.release(keys=[lock], args=[token])

    def hold_off(self, lane: str, until_ms: int) -> None:
        """A retry of the lane is scheduled for `until_ms`: the stall sweep counts from then."""
        self.redis.set(Keys.lane_armed(lane), until_ms)


@dataclass
class _Batch:
    """What a batch took: lane events, and the size of their outputs so far."""

    events: int = 0
    output_bytes: int = 0


def _forget_seen(event: Event, ttl_s: int) -> list[Op]:
    """A dead-lettered message is not remembered as delivered: re-published by XADD of its fields
    (the platform's runbook), it is processed, once, instead of dropped as Meta's redelivery."""
    if isinstance(event, Message) and event.wa_message_id:
        return dedupe.forget_ops(event.org_id, event.wa_message_id, now_ms(), ttl_s)
    return []


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
    metrics.handoffs.inc(sum(1 for a in applied if a.outcome.handed_off))
    for reason, count in Counter(done.outcome.ignored for done in applied if done.outcome.ignored).items():
        metrics.ignored.labels(reason).inc(count)
    for status, count in Counter(status for done in applied for status in run_statuses(done.outcome)).items():
        metrics.runs.labels(status).inc(count)
    for (item, _event), done in zip(work, applied, strict=True):
        if done.outcome.outbox:
            metrics.latency_seconds.observe(max(written_ms - stream_ms(item.stream_id), 0) / 1000)
    for op in ops:
        if op[0] == "x" and op[1] == DLQ:
            error = op[2][op[2].index("error") + 1]
            metrics.dlq.labels(error).inc()
            metrics.errors.labels(error).inc()
    metrics.processing_seconds.observe(time.perf_counter() - started)


def run_statuses(outcome: Outcome) -> list[str]:
    """The statuses runs reached by `outcome`: `running` for a run it started, and each run's end."""
    reached = []
    for run in (outcome.ended, outcome.run):
        if run is None:
            continue
        wait = outcome.wait_before
        if wait is None or wait.run_id != run.id:
            reached.append("running")
        if run.status != "running":
            reached.append(run.status)
    return reached


def _log(work: list[tuple[lanes.Item, Event]], applied: list[Applied]) -> None:
    """Failed runs at WARNING, every event at DEBUG; ids only, never texts or phone numbers."""
    debug = log.isEnabledFor(logging.DEBUG)
    for (_item, event), done in zip(work, applied, strict=True):
        outcome = done.outcome
        if outcome.failure is None and not debug:
            continue
        ids = {"org_id": event.org_id, "run_id": outcome.run.id if outcome.run else None,
               "event_id": event.key, "trace_id": derive_own(event.key, "trace")}
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


