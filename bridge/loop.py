"""The bridge loop: read nf:incoming through the consumer group and hand entries on to lanes.

One bridge at a time holds the lease and reads, so entries reach their lanes in stream order
(per-contact order needs that); the others stand by and take over when the lease lapses, first
claiming every entry still pending (the old holder's and their own) and handing those on in order.
The handoff script is fenced by the lease: a bridge that lost it cannot hand anything on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis

from bridge.routing import route
from flow_engine import metrics
from flow_engine.adapters import dedupe
from flow_engine.adapters.dlq import dlq_entry
from flow_engine.adapters.keys import (
    BRIDGE_LEASE,
    CONVERSING,
    CONVERSING_BATCH,
    CONVERSING_WITHIN_MS,
    DLQ,
    INBOX_PREFIX,
    INBOXES,
    INCOMING,
    LANE_PREFIX,
    LANES,
    STATS,
    Keys,
)
from flow_engine.adapters.scripts import Scripts, connect
from flow_engine.adapters.signing import load_secret
from flow_engine.clock import now_ms
from flow_engine.core.inbound import MAX_ORG_CHARS
from flow_engine.errors import Fenced, GroupExists, StreamGone
from flow_engine.outages import run_until_stopped
from flow_engine.settings import Settings

log = logging.getLogger("flow_engine.bridge")
# (stream id, fields or None when the entry is gone from nf:incoming, the key it was read from)
Entry = tuple[bytes, dict[bytes, bytes] | None, bytes]
FORMER_SEEN_EVERY_MS = 600_000
# Entries taken into the orgs' inboxes per read (lua/intake.lua): many more than are handed on, so
# the intake keeps ahead of a blast and a quiet org's entry reaches its inbox within a read or two.
INTAKE_ENTRIES = 2_000
# Bytes of fields the intake stops after: a read holds Redis for a few ms at most.
READ_BYTES = 4 * 1024 * 1024
# While an org's lanes hold events enough for two full batches of each (2 x FLOW_ENGINE_LANES x
# FLOW_ENGINE_LANE_BATCH; batches of CONVERSING_BATCH while another org is having conversations), the
# intake hands on no more of its entries: a blast waits in its inbox (an id each), and the bridge does
# not spend the CPU the workers need to hand it on sooner than they can take it. Two, not one: with
# one, a lane a worker emptied often held less than a batch when the next worker came (30,000
# messages alone: 224 batches instead of 182). When only held-back orgs wait, the bridge reads again
# after a new entry or this long (a quiet org's entry ends the wait).
LANE_BATCHES_AHEAD = 2
HELD_BACK_WAIT_MS = 20
INBOX_SOURCE_PREFIX = INBOX_PREFIX.encode()
INCOMING_SOURCE = INCOMING.encode()
CONVERSING_KEPT_MS = 60_000  # marks older than this are dropped from CONVERSING


class Bridge:
    def __init__(self, settings: Settings, enqueue: Callable[[str, bool], Any]) -> None:
        self.settings = settings
        self.enqueue = enqueue  # starts a worker task for a lane (and whether it is a conversation's)
        self.redis = connect(settings.redis_url, decode=False)  # entries may hold invalid UTF-8
        self.scripts = Scripts(self.redis)
        self.token = f"{settings.consumer}:{uuid.uuid4().hex}"
        self.leader = False
        self.must_recover = False  # entries read but maybe not handed on are pending: re-read them
        self.secret: bytes | None = None  # the engine's secret (adapters/signing.py), read once Redis answers
        self.former_seen_checked_ms = -FORMER_SEEN_EVERY_MS  # when keys of the former dedupe layout were looked for
        self.former_seen = True
        self.group_ready = False  # the consumer group is known to exist
        self.cursor: bytes | str = "0"  # where the next read goes on among the orgs with inboxes (SSCAN)

    def ensure_group(self) -> None:
        with contextlib.suppress(GroupExists):
            self.redis.xgroup_create(INCOMING, self.settings.group, id=self.settings.group_start, mkstream=True)

    # -- leadership -----------------------------------------------------------------------------------

    def lease_ms(self) -> int:
        return self.settings.claim_idle_ms

    def try_lead(self) -> bool:
        """Take the lease if it is free; on taking it, hand on everything left pending first."""
        if self.redis.set(BRIDGE_LEASE, self.token, nx=True, px=self.lease_ms()):
            log.info("bridge %s leads", self.settings.consumer)
            self.leader = True
            self.must_recover = True
        return self.leader

    def renew(self) -> None:
        if not self.scripts.renew(keys=[BRIDGE_LEASE], args=[self.token, self.lease_ms()]):
            log.warning("bridge %s lost the lease", self.settings.consumer)
            self.leader = False

    def resign(self) -> None:
        if self.leader:
            self.scripts.release(keys=[BRIDGE_LEASE], args=[self.token])
            self.leader = False

    def recover(self) -> int:
        """Claim every pending entry of the group (any consumer's: the lease says they are gone) and
        hand them on in stream order. Entries handed on before are skipped by the handoff script."""
        claimed: list[Entry] = []
        cursor: bytes | str = "0-0"
        while True:
            cursor, entries, _deleted = self.redis.xautoclaim(
                INCOMING, self.settings.group, self.settings.consumer, min_idle_time=0, start_id=cursor, count=1000
            )[:3]
            claimed.extend((entry_id, fields, INCOMING_SOURCE) for entry_id, fields in entries if fields is not None)
            if cursor in (b"0-0", "0-0"):
                break
        claimed.sort(key=lambda entry: tuple(int(part) for part in entry[0].split(b"-")))
        for start in range(0, len(claimed), self.settings.read_batch):
            self.hand_on(claimed[start : start + self.settings.read_batch])
        return len(claimed)

    # -- reading and handing on -----------------------------------------------------------------------

    def step(self, block_ms: int = 1000) -> int:
        """One read: take new entries into the orgs' inboxes and hand on a share of each org's
        (FLOW_ENGINE_READ_BATCH in all); when there is nothing, wait up to `block_ms` for a new entry.
        Returns the entries handed on."""
        lanes = self.settings.lanes
        reply = self.scripts.intake(
            keys=[INCOMING, BRIDGE_LEASE, INBOXES, CONVERSING],
            args=[self.settings.group, self.settings.consumer, self.token, self.lease_ms(), INTAKE_ENTRIES,
                  MAX_ORG_CHARS * 4, INBOX_PREFIX, READ_BYTES, self.settings.read_batch, self.cursor,
                  LANE_PREFIX, lanes, LANE_BATCHES_AHEAD * lanes * self.settings.lane_batch,
                  LANE_BATCHES_AHEAD * lanes * min(self.settings.lane_batch, CONVERSING_BATCH), now_ms(),
                  CONVERSING_WITHIN_MS],
        )
        taken, last_id, self.cursor, held_back = int(reply[0]), reply[1], reply[2], int(reply[3])
        entries = self.fetch([(INBOX_SOURCE_PREFIX + reply[at], reply[at + 1]) for at in range(4, len(reply), 2)])
        if entries:
            self.hand_on(entries)
        elif held_back and not taken:  # only full lanes' orgs wait: read again once they may have room
            self.redis.xread({INCOMING: "$"}, count=1, block=HELD_BACK_WAIT_MS)
        elif not taken:  # nothing waits: sleep until an entry arrives after the last one taken in
            self.redis.xread({INCOMING: last_id}, count=1, block=block_ms)
        return len(entries)

    def fetch(self, inboxes: list[tuple[bytes, list[bytes]]]) -> list[Entry]:
        """The entries of the ids the intake gave per inbox, read from nf:incoming by the bridge
        (natively, not through the script): one XRANGE over each org's ids (close together in a
        backlog), then one by one the ids outside it. An id whose entry is gone gives None (the DLQ)."""
        if not inboxes:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for _source, ids in inboxes:
            pipe.xrange(INCOMING, min=ids[0], max=ids[-1], count=2 * len(ids))
        found: dict[bytes, dict[bytes, bytes]] = {}
        for window in pipe.execute():
            found.update(window)
        missing = [entry_id for _source, ids in inboxes for entry_id in ids if entry_id not in found]
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for entry_id in missing:
                pipe.xrange(INCOMING, min=entry_id, max=entry_id)
            for one in pipe.execute():
                found.update(one)
        return [(entry_id, found.get(entry_id), source) for source, ids in inboxes for entry_id in ids]

    def seen_arg(self) -> Callable[[str, str], bytes]:
        """How message ids are checked for duplicates: with the former layout's keys while any is left."""
        at_ms = now_ms()
        if self.former_seen and at_ms - self.former_seen_checked_ms >= FORMER_SEEN_EVERY_MS:
            self.former_seen_checked_ms = at_ms
            self.former_seen = dedupe.former_keys_left(self.redis)
        return dedupe.seen_arg if self.former_seen else dedupe.seen_arg_new

    def hand_on(self, entries: Sequence[Entry]) -> None:
        if self.secret is None:
            self.secret = load_secret(self.redis)
        routed = route(entries, self.settings.lanes, self.seen_arg(), self.secret)
        if routed.forged and load_secret(self.redis) != self.secret:  # the secret was deleted and made anew
            self.secret = load_secret(self.redis)
            routed = route(entries, self.settings.lanes, self.seen_arg(), self.secret)
        if routed.forged:
            log.warning("bridge: %s timer resumes without the timer loop's signature ignored (forged-resume)",
                        routed.forged)
        for stream_id, fields, reason, source in routed.invalid:
            entry = dlq_entry(fields, error="invalid-payload", detail=reason, retries=0, source_id=stream_id,
                              failed_at_ms=now_ms())
            if self.scripts.dead_letter(
                keys=[INCOMING, DLQ, BRIDGE_LEASE, source, INBOXES],
                args=[self.settings.group, self.token, stream_id, INBOX_PREFIX, *entry],
            ):
                metrics.dlq.labels("invalid-payload").inc()
                metrics.errors.labels("invalid-payload").inc()
        if not routed.batches:
            self.renew()  # only invalid entries or none: the handoff script did not extend the lease
            return
        conversing: set[str] = set()  # orgs of the conversational lanes armed by this hand-on
        for batch in routed.batches:
            at_ms, every_s = now_ms(), dedupe.slot_s(self.settings.dedupe_ttl_s)
            result = self.scripts.handoff(
                keys=[INCOMING, BRIDGE_LEASE, STATS, LANES, INBOXES],
                args=[self.settings.group, self.token, self.lease_ms(), every_s, at_ms, LANE_PREFIX,
                      at_ms // 1000 // every_s, INBOX_PREFIX, *batch],
            )
            metrics.handed_on.inc(int(result[0]))
            metrics.duplicates.inc(int(result[1]))
            metrics.ignored.labels("duplicate").inc(int(result[1]))
            metrics.ignored.labels("receipt").inc(int(result[2]))
            metrics.ignored.labels("forged-resume").inc(int(result[3]))
            for raw in result[4:]:
                lane = raw.decode() if isinstance(raw, bytes) else raw
                conversational = routed.conversational(lane)
                self.enqueue(lane, conversational)
                if conversational:
                    conversing.add(Keys.lane_org(lane))
        if conversing:
            self.mark_conversing(conversing, now_ms())

    def mark_conversing(self, orgs: set[str], at_ms: int) -> None:
        """Tell workers which orgs are having conversations now (see Runtime.others_conversing)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(CONVERSING, dict.fromkeys(orgs, at_ms))
        pipe.zremrangebyscore(CONVERSING, "-inf", at_ms - CONVERSING_KEPT_MS)
        pipe.execute()

    # -- the loop -------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        run_until_stopped(stop, lambda: self.iteration(stop), what="bridge", log=log, after_outage=self.after_outage)
        self.resign()

    def iteration(self, stop: threading.Event) -> bool:
        """Lead (or stand by), recover, read once; False when it did not get through to a read."""
        try:
            if not self.group_ready:
                self.ensure_group()
                self.group_ready = True
            if not self.leader and not self.try_lead():
                stop.wait(min(1.0, self.lease_ms() / 4000))
                return False
            if self.must_recover:
                recovered = self.recover()
                self.must_recover = False
                log.info("bridge %s handed on %s pending entries", self.settings.consumer, recovered)
            self.step()
            return True
        except Fenced as exc:
            log.warning("bridge %s was fenced: %s", self.settings.consumer, exc)
            self.leader = False
        except StreamGone:  # the stream was deleted: make both again
            self.group_ready = False
        return False

    def after_outage(self) -> None:
        self.leader = self.leader and self._still_leader()
        self.must_recover = True

    def _still_leader(self) -> bool:
        try:
            return bool(self.redis.get(BRIDGE_LEASE) == self.token.encode())
        except redis.RedisError:
            return False
