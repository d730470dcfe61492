"""Every Redis key the engine uses, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from flow_engine.core import jsontext
from flow_engine.settings import Settings

INCOMING = "nf:incoming"
OUTBOX = "nf:outbox"
WEBHOOKS = "nf:webhooks"
DLQ = "nf:incoming:dlq"

LANE_PREFIX = "fe:lane:"  # fe:lane:{lane} (list of events), fe:lane:{lane}:armed, fe:lane:{lane}:lock
LANES = "fe:lanes"  # set of the lanes that hold events (a lane is "{org}:{n}": every org has its own)
# Stage one of the bridge (lua/intake.lua): each entry of nf:incoming is copied, under its own id,
# into its org's inbox stream fe:inbox:{org_id as given}, until handed on; INBOXES is the set of the
# orgs whose inbox holds entries. The bridge reads a share of every org's inbox in turn (fairness).
INBOX_PREFIX = "fe:inbox:"
INBOXES = "fe:inboxes"
# ZSET org (as in lane ids) -> when (ms) the bridge last armed a lane of it while it was having
# conversations. While another org's mark is younger than CONVERSING_WITHIN_MS, a worker draining an
# org's backlog takes batches of CONVERSING_BATCH (runtime.py), and the bridge hands that backlog on
# only while its lanes hold less than two such batches a lane (lua/intake.lua, bridge/loop.py).
CONVERSING = "fe:conversing"
CONVERSING_WITHIN_MS = 2_000
# A quiet org's message then waits for a worker process about an eighth of a full batch
# (FLOW_ENGINE_LANE_BATCH, 400). 100 gave the quiet org's p99 during a 60,000 blast 150-180 ms, 50 gave
# 110-140 ms, 25 about 105 ms for a third slower drain of the blast (README, Performance).
CONVERSING_BATCH = 50
BRIDGE_LEASE = "fe:bridge:lease"  # the one bridge allowed to hand entries on (keeps stream order)
TIMER_WAKE = "fe:timers:wake"  # pub/sub channel: an earlier timer was added
STATS = "fe:stats"  # hash of counters kept by scripts (duplicates, ignored:<reason>, waits)
# Celery queues, consumed in this order (queue_order_strategy "priority"): a lane that was idle and
# just got an event goes first, so a quiet org is served before the next turn of a busy org's lanes.
NEW_LANES_QUEUE = "flow-engine-new"
BUSY_LANES_QUEUE = "flow-engine"  # a lane that used up its turn and still holds events; retries
# Contacts with an agent (SPEC §5.3): ZSET of handoff_member() scored by since when (ms). Their state is
# the wait key (kind "handoff"); this index, changed by the same commit, lets `handoff list` skip a scan.
HANDOFFS = "fe:handoffs"
SECRET = "fe:secret"  # the engine's MAC key (resume and replay signatures); created once, never rotated
DEDUPE_PREFIX = "fe:dedupe:"  # fe:dedupe:h:{slot}:{shard}: hashes of 12-byte message id records (dedupe.py)
FORMER_SEEN_KEYS = "fe:seen:*"  # the former dedupe layout, one key per message id (Keys.seen)
INTENT_PREFIX = "fe:intent:"  # fe:intent:{event key}: the intent decided for an event (nlp.py)
# Not here: the wait prefix and the timer ZSET, settings of their own (FLOW_ENGINE_WAIT_PREFIX,
# FLOW_ENGINE_SCHED_ZSET), reached through Keys.of(settings).


def part(value: str) -> str:
    """One part of a composite key, escaped so that parts can never run into each other: `%` and `:`
    are percent-encoded (org "a:b" + channel "c" and org "a" + channel "b:c" stay two keys). Parts
    without them, all real ids, are unchanged, so keys written before this escaping still match."""
    if "%" in value or ":" in value:
        return value.replace("%", "%25").replace(":", "%3A")
    return value


def handoff_member(org_id: str, channel_id: str, contact: str) -> str:
    """A contact's member of the HANDOFFS index: [org, channel, contact] as compact JSON."""
    return jsontext.compact([org_id, channel_id, contact])


def ignored_field(reason: str) -> str:
    """The stats hash field counting events ignored for `reason` (`flow-engine status` lists them)."""
    return f"ignored:{reason}"


@dataclass(frozen=True)
class Keys:
    wait_prefix: str
    timers: str

    @classmethod
    def of(cls, settings: Settings) -> Keys:
        return cls(settings.wait_prefix, settings.sched_zset)

    @staticmethod
    def lane_id(org_id: str, n: int) -> str:
        """Lane `n` of an org: each org has lanes of its own, so one org's backlog never sits in
        front of another org's events."""
        return f"{part(org_id)}:{n}"

    @staticmethod
    def lane_org(lane: str) -> str:
        """The org part of a lane id (escaped, as in `lane_id`)."""
        return lane.rsplit(":", 1)[0]

    @staticmethod
    def lane(lane: str) -> str:
        return f"{LANE_PREFIX}{lane}"

    @staticmethod
    def lane_lock(lane: str) -> str:
        return f"{LANE_PREFIX}{lane}:lock"

    @staticmethod
    def lane_armed(lane: str) -> str:
        return f"{LANE_PREFIX}{lane}:armed"

    def wait(self, org_id: str, channel_id: str, contact: str) -> str:
        return f"{self.wait_prefix}:{part(org_id)}:{part(channel_id)}:{part(contact)}"

    @staticmethod
    def held(org_id: str, channel_id: str, contact: str) -> str:
        """A contact's messages held during a delay, oldest first (lane items, as the lane holds them)."""
        return f"fe:held:{part(org_id)}:{part(channel_id)}:{part(contact)}"

    @staticmethod
    def intent(event_key: str) -> str:
        """The intent decided for an event, kept so a replay after a crash routes it the same way."""
        return f"{INTENT_PREFIX}{part(event_key)}"

    @staticmethod
    def seen(org_id: str, wa_message_id: str) -> str:
        """Marks a WhatsApp message id as delivered once (48 h), to drop Meta's redeliveries."""
        return f"fe:seen:{part(org_id)}:{part(wa_message_id)}"
