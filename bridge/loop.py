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
INTAKE_CHUNK = 500  # entries per XREADGROUP of a read
# Bytes of fields a read stops after: a read holds Redis for a few ms at most.
READ_BYTES = 4 * 1024 * 1024
# Entries read ahead are kept in memory (about 1 KB each), by id, until their turn to be handed on, so
# most entries are read from nf:incoming once; past these bounds only their ids are kept (in the
# inboxes) and the entries are read again when their turn comes.
AHEAD_ENTRIES = 50_000
AHEAD_BYTES = 32 * 1024 * 1024
MAX_ORG_BYTES = MAX_ORG_CHARS * 4  # longer is never a valid org: such an entry goes to org "" (the DLQ)
INBOX_SOURCE_PREFIX = INBOX_PREFIX.encode()
CONVERSING_KEPT_MS = 60_000  # marks older than this are dropped from CONVERSING


class Bridge:
    def __init__(self, settings: Settings, enqueue: Callable[[str, bool], Any]) -> None:
        self.settings = settings
        self.enqueue = enqueue  # starts a worker task for a lane (and whether it is a conversation's)
        self.redis = connect(settings.redis_url, decode=False)  # entries may hold invalid UTF-8
        self.scripts = Scripts(self.redis)
        self.token = f"{settings.consumer}:{uuid.uuid4().hex}"
        self.leader = False
        self.must_recover = False  # entries read but maybe not taken in are pending: claim them
        self.secret: bytes | None = None  # the engine's secret (adapters/signing.py), read once Redis answers
        self.former_seen_checked_ms = -FORMER_SEEN_EVERY_MS  # when keys of the former dedupe layout were looked for
        self.former_seen = True
        self.group_ready = False  # the consumer group is known to exist
        self.cursor: bytes | str = "0"  # where the next read goes on among the orgs with inboxes (SSCAN)
        self.idle = False  # no inbox held entries at the last read: the next one waits for new entries
        # Entries taken into the inboxes, by id, with their size in bytes, until fetched (AHEAD_ENTRIES).
        self.ahead: dict[bytes, tuple[dict[bytes, bytes], int]] = {}
        self.ahead_bytes = 0

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
            self.forget_ahead()  # another bridge may have handed on what this one read before
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
        """Claim every pending entry of the group (read by a bridge that stopped before taking them into
        the inboxes, or left by a bridge of before inboxes: the lease says they are gone) and take them
        into their inboxes, in stream order: they are newer than every entry there. An entry deleted
        from the stream while pending goes to the inbox of org "" with its id alone, and so to the DLQ
        (bridge/routing.py: GONE)."""
        claimed: list[tuple[bytes, dict[bytes, bytes] | None]] = []
        cursor: bytes | str = "0-0"
        while True:
            reply = self.redis.xautoclaim(
                INCOMING, self.settings.group, self.settings.consumer, min_idle_time=0, start_id=cursor, count=1000
            )
            cursor = reply[0]
            claimed.extend(reply[1])
            claimed.extend((entry_id, None) for entry_id in (reply[2] if len(reply) > 2 else []))
            if cursor in (b"0-0", "0-0"):
                break
        claimed.sort(key=lambda entry: tuple(int(part) for part in entry[0].split(b"-")))
        for start in range(0, len(claimed), INTAKE_ENTRIES):
            self.take_in(claimed[start : start + INTAKE_ENTRIES], most_out=0)
        return len(claimed)

    # -- reading and handing on -----------------------------------------------------------------------

    def step(self, block_ms: int = 1000) -> int:
        """One read: take new entries into the orgs' inboxes and hand on a share of each org's
        (FLOW_ENGINE_READ_BATCH in all); when the inboxes were empty, wait up to `block_ms` for a new
        entry first. Returns the entries handed on."""
        reply = self.take_in(self.read(block_ms if self.idle else None), most_out=self.settings.read_batch)
        self.idle, self.cursor = reply[0] == 1, reply[1]
        if self.idle:
            self.forget_ahead()  # nothing waits: whatever is left was taken out by others (an operator)
        entries = self.fetch([(INBOX_SOURCE_PREFIX + reply[at], reply[at + 1]) for at in range(2, len(reply), 2)])
        if entries:
            self.hand_on(entries)
        return len(entries)

    def read(self, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """New entries of nf:incoming through the group, up to INTAKE_ENTRIES or READ_BYTES, waiting up
        to `block_ms` for the first one (None: not at all)."""
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        size = 0
        while len(entries) < INTAKE_ENTRIES and size < READ_BYTES:
            count = min(INTAKE_CHUNK, INTAKE_ENTRIES - len(entries))
            reply = self.redis.xreadgroup(self.settings.group, self.settings.consumer, {INCOMING: ">"},
                                          count=count, block=None if entries else block_ms)
            chunk = reply[0][1] if reply else []
            for entry_id, fields in chunk:
                entry_bytes = sum(map(len, fields)) + sum(map(len, fields.values()))
                size += entry_bytes
                if len(self.ahead) < AHEAD_ENTRIES and self.ahead_bytes < AHEAD_BYTES:
                    self.ahead[entry_id] = (fields, entry_bytes)
                    self.ahead_bytes += entry_bytes
            entries += chunk
            if len(chunk) < count:
                break
        return entries

    def take_in(self, entries: Sequence[tuple[bytes, dict[bytes, bytes] | None]], most_out: int) -> list[Any]:
        """Append the ids of entries read through the group to their orgs' inboxes and acknowledge them
        (lua/intake.lua), then fetch the ids at the heads of the inboxes, `most_out` in all."""
        by_org: dict[bytes, list[bytes]] = {}
        for entry_id, fields in entries:
            org = b"" if fields is None else fields.get(b"org_id", b"")
            if len(org) > MAX_ORG_BYTES:
                org = b""
            ids = by_org.get(org)
            if ids is None:
                ids = by_org[org] = []
            ids.append(entry_id)
        args: list[Any] = [self.settings.group, self.token, self.lease_ms(), INBOX_PREFIX, most_out, self.cursor,
                           len(by_org)]
        for org, ids in by_org.items():
            args += [org, len(ids), *ids]
        return list(self.scripts.intake(keys=[INCOMING, BRIDGE_LEASE, INBOXES], args=args))

    def forget_ahead(self) -> None:
        self.ahead.clear()
        self.ahead_bytes = 0

    def fetch(self, inboxes: list[tuple[bytes, list[bytes]]]) -> list[Entry]:
        """The entries of the ids the intake gave per inbox: those read ahead from memory, the others
        read from nf:incoming: one XRANGE over each org's ids (close together in a backlog), then one
        by one the ids outside it. An id whose entry is gone gives None (the DLQ)."""
        found: dict[bytes, dict[bytes, bytes]] = {}
        missing: list[tuple[bytes, list[bytes]]] = []
        for source, ids in inboxes:
            unread = []
            for entry_id in ids:
                kept = self.ahead.pop(entry_id, None)
                if kept is None:
                    unread.append(entry_id)
                else:
                    found[entry_id] = kept[0]
                    self.ahead_bytes -= kept[1]
            if unread:
                missing.append((source, unread))
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for _source, ids in missing:
                pipe.xrange(INCOMING, min=ids[0], max=ids[-1], count=2 * len(ids))
            for window in pipe.execute():
                found.update(window)
            outside = [entry_id for _source, ids in missing for entry_id in ids if entry_id not in found]
            if outside:
                pipe = self.redis.pipeline(transaction=False)
                for entry_id in outside:
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
            self.forget_ahead()
        except StreamGone:  # the stream was deleted: make both again
            self.group_ready = False
        return False

    def after_outage(self) -> None:
        self.leader = self.leader and self._still_leader()
        self.must_recover = True
        self.forget_ahead()

    def _still_leader(self) -> bool:
        try:
            return bool(self.redis.get(BRIDGE_LEASE) == self.token.encode())
        except redis.RedisError:
            return False
