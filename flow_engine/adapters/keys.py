"""Every Redis key the engine uses, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from flow_engine.settings import Settings

INCOMING = "nf:incoming"
OUTBOX = "nf:outbox"
WEBHOOKS = "nf:webhooks"
DLQ = "nf:incoming:dlq"

LANE_PREFIX = "fe:lane:"  # fe:lane:{n} (list of events), fe:lane:{n}:armed, fe:lane:{n}:lock
BRIDGE_LEASE = "fe:bridge:lease"  # the one bridge allowed to hand entries on (keeps stream order)
TIMER_WAKE = "fe:timers:wake"  # pub/sub channel: an earlier timer was added
STATS = "fe:stats"  # hash of counters kept by scripts (duplicates, ignored, ...)


@dataclass(frozen=True)
class Keys:
    wait_prefix: str
    timers: str

    @classmethod
    def of(cls, settings: Settings) -> Keys:
        return cls(settings.wait_prefix, settings.sched_zset)

    @staticmethod
    def lane(n: int) -> str:
        return f"{LANE_PREFIX}{n}"

    @staticmethod
    def lane_lock(n: int) -> str:
        return f"{LANE_PREFIX}{n}:lock"

    @staticmethod
    def lane_armed(n: int) -> str:
        return f"{LANE_PREFIX}{n}:armed"

    def wait(self, org_id: str, channel_id: str, contact: str) -> str:
        return f"{self.wait_prefix}:{org_id}:{channel_id}:{contact}"

    @staticmethod
    def seen(org_id: str, wa_message_id: str) -> str:
        """Marks a WhatsApp message id as delivered once (48 h), to drop Meta's redeliveries."""
        return f"fe:seen:{org_id}:{wa_message_id}"
