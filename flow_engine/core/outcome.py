"""What the interpreter decides: plain data the runtime applies (and the simulator prints)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, overload

from flow_engine.core.frozen import quick_init
from flow_engine.core.inbound import Resume
from flow_engine.core.jsontext import compact

_T = TypeVar("_T")


class cached_property(Generic[_T]):
    """functools.cached_property without the lock Python 3.11 takes on every first read (outcomes
    are made and read by one thread, many per event on the worker's hot path)."""

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func, self.name = func, func.__name__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> cached_property[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


@quick_init
@dataclass(frozen=True)
class Contact:
    """A snapshot of the contact the event belongs to."""

    phone: str
    name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


class _Entry:
    """An output stream entry (SPEC §3): every value a string, structured ones JSON-encoded once,
    as the output cap measures it and the commit writes it."""

    _fields: dict[str, str]  # each entry's own, cached

    def fields(self) -> dict[str, str]:
        return dict(self._fields)

    def flat(self) -> list[str]:
        """The fields as the commit's XADD takes them: name, value, name, value..."""
        return [part for item in self._fields.items() for part in item]

    @property
    def chars(self) -> int:
        """The size of the entry's field values (what the output cap counts, once per entry)."""
        return sum(map(len, self._fields.values()))


@quick_init
@dataclass(frozen=True)
class OutboxMessage(_Entry):
    org_id: str
    channel_id: str
    to: str
    type: Literal["text", "template", "media"]
    content: Any  # str for text, {"name","language","components"} or {"kind","link","caption"?}
    client_id: str
    trace_id: str
    orig_text: str
    run_id: str

    @cached_property
    def _fields(self) -> dict[str, str]:
        # Encoded once: the output cap measures it and the commit writes it.
        content = self.content if self.type == "text" else compact(self.content)
        return {
            "org_id": self.org_id,
            "channel_id": self.channel_id,
            "to": self.to,
            "type": self.type,
            self.type: content,
            "client_id": self.client_id,
            "trace_id": self.trace_id,
            "orig_text": self.orig_text,
            "run_id": self.run_id,
        }


@quick_init
@dataclass(frozen=True)
class WebhookEvent(_Entry):
    org_id: str
    event_id: str
    ts_ms: int
    body: Mapping[str, Any]  # {"flow_id","run_id","path","step_index","data","input_text",...}
    type: str = "flow.webhook"  # or "flow.handoff" (SPEC §5.3)

    @cached_property
    def _fields(self) -> dict[str, str]:
        return {
            "org_id": self.org_id,
            "type": self.type,
            "event_id": self.event_id,
            "ts": str(self.ts_ms),
            "body": compact(self.body),
        }


@quick_init
@dataclass(frozen=True)
class AttributeWrite:
    key: str
    value: Any


@quick_init
@dataclass(frozen=True)
class Jumped:
    """A trace, not an action: the run left `step` ("path:index") for the first step of `path`, by
    `via` (a branch case's test, "default", "goto", or a split's "variant"). The runtime applies
    nothing for it; the simulator and the fixtures show which way a run went."""

    step: str
    via: str
    path: str


@quick_init
@dataclass(frozen=True)
class TagWrite:
    """`add_tag` / `remove_tag`: `tag` is put into (`present`) or taken out of the sorted, duplicate-free
    list `contacts.attributes.tags`. Applied by the database as a merge (a tag another service adds at
    the same time survives), not as a write of the whole list."""

    tag: str
    present: bool


Effect = OutboxMessage | WebhookEvent | AttributeWrite | TagWrite | Jumped
_CONTACT_EFFECTS = (AttributeWrite, TagWrite)
TAGS = "tags"  # the contact attribute add_tag / remove_tag keep


def tags_of(attributes: Mapping[str, Any]) -> list[str]:
    """A contact's tags as a sorted list of texts without duplicates (whatever the attribute holds)."""
    value = attributes.get(TAGS)
    items = value if isinstance(value, list) else []
    return sorted({item if isinstance(item, str) else compact(item) for item in items})


def with_tag(attributes: Mapping[str, Any], tag: str, present: bool) -> list[str]:
    tags = set(tags_of(attributes))
    if present:
        tags.add(tag)
    else:
        tags.discard(tag)
    return sorted(tags)


def apply_attribute_effects(attributes: Mapping[str, Any], effects: tuple[Effect, ...]) -> dict[str, Any]:
    """`attributes` after the attribute writes and tag changes of `effects`, in order."""
    result = dict(attributes)
    for effect in effects:
        if isinstance(effect, AttributeWrite):
            result[effect.key] = effect.value
        elif isinstance(effect, TagWrite):
            result[TAGS] = with_tag(result, effect.tag, effect.present)
    return result


TimerReason = Literal["delay", "timeout", "expire", "handoff"]


@quick_init
@dataclass(frozen=True)
class Timer:
    """Deferred work: at `due_ms` a Resume event for `token` enters nf:incoming."""

    token: str
    due_ms: int
    org_id: str
    channel_id: str
    contact: str
    run_id: str
    reason: TimerReason

    def member(self) -> str:
        """The timer's ZSET member, also the `engine_resume` field it is published with:
        [reason, token, org_id, channel_id, contact]. Compact, as a million may be pending."""
        return compact([self.reason, self.token, self.org_id, self.channel_id, self.contact])

    def resume(self) -> Resume:
        """The event this timer becomes when it is due."""
        return Resume(f"timer:{self.token}", self.org_id, self.channel_id, self.contact, self.token, self.reason)

    def resume_fields(self) -> dict[str, str]:
        """The nf:incoming entry the timer loop publishes when the timer is due."""
        return {
            "source": "engine",
            "org_id": self.org_id,
            "channel_id": self.channel_id,
            "engine_resume": self.member(),
            "due_ms": str(self.due_ms),
        }


@quick_init
@dataclass(frozen=True)
class WaitState:
    """A paused run: where it continues and what it waits for. Stored per contact."""

    run_id: str
    flow_id: str
    flow_version: int
    path: str
    index: int  # the wait / delay / handoff step itself
    kind: Literal["reply", "delay", "handoff"]  # handoff: the run completed, the contact is with an agent
    token: str
    due_ms: int | None  # None: a reply wait without timeout
    trigger_text: str  # {{message.text}} after a delay
    intent: str
    attempts: int = 0  # non-matching replies so far (counted when the step has max_attempts)
    expires: bool = False  # the timer (due_ms) is the run's expiry, not the step's own timeout
    steps: int = 0  # steps run since the contact last replied (the loop guard's count)
    variants: tuple[tuple[str, str], ...] = ()  # A/B variants chosen so far: (step location, path)
    trail: int = 0  # trail entries the run has recorded so far (the next one's number, core/trail.py)
    since_ms: int | None = None  # handoff: when the contact was handed to an agent
    queue: str = ""  # handoff: the agents' queue the step named

    @property
    def timer_reason(self) -> TimerReason:
        """The reason of the one timer this wait may be resumed by."""
        if self.kind == "delay":
            return "delay"
        if self.kind == "handoff":
            return "handoff"  # the release after FLOW_ENGINE_HANDOFF_TTL_MIN
        return "expire" if self.expires else "timeout"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "flow_id": self.flow_id,
            "flow_version": self.flow_version,
            "path": self.path,
            "index": self.index,
            "kind": self.kind,
            "token": self.token,
            "due_ms": self.due_ms,
            "trigger_text": self.trigger_text,
            "intent": self.intent,
            "attempts": self.attempts,
            "expires": int(self.expires),
            "steps": self.steps,
            "variants": dict(self.variants),
            "trail": self.trail,
            "since_ms": self.since_ms,
            "queue": self.queue,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> WaitState:
        return cls(
            run_id=str(raw["run_id"]),
            flow_id=str(raw["flow_id"]),
            flow_version=int(raw["flow_version"]),
            path=str(raw["path"]),
            index=int(raw["index"]),
            kind="delay" if raw["kind"] == "delay" else "handoff" if raw["kind"] == "handoff" else "reply",
            token=str(raw["token"]),
            due_ms=None if raw.get("due_ms") is None else int(raw["due_ms"]),
            trigger_text=str(raw.get("trigger_text", "")),
            intent=str(raw.get("intent", "default")),
            attempts=int(raw.get("attempts") or 0),  # waits stored before these fields existed: 0
            expires=bool(raw.get("expires")),
            steps=int(raw.get("steps") or 0),
            variants=tuple(sorted((str(k), str(v)) for k, v in (raw.get("variants") or {}).items())),
            trail=int(raw.get("trail") or 0),
            since_ms=None if raw.get("since_ms") is None else int(raw["since_ms"]),
            queue=str(raw.get("queue") or ""),
        )


RunStatus = Literal["running", "completed", "failed", "expired", "interrupted"]


@quick_init
@dataclass(frozen=True)
class RunRecord:
    """The flow_runs row as it must be after this event (an upsert keyed by `id`)."""

    id: str
    flow_id: str
    flow_version: int
    status: RunStatus
    last_step: str  # "<path>:<index>"
    context: Mapping[str, Any]
    trail: tuple[Mapping[str, Any], ...] = ()  # what this event did to the run (core/trail.py)
    trail_from: int = 0  # the number of trail[0] in the run: entries recorded before this event

    @property
    def trail_count(self) -> int:
        """Trail entries the run has recorded with this event."""
        return self.trail_from + len(self.trail)


@quick_init
@dataclass(frozen=True)
class FlowFailure:
    """A permanent flow problem: the run fails and the event goes to the DLQ without retries."""

    code: str  # "flow-error"
    detail: str  # one human line


@quick_init
@dataclass(frozen=True)
class Outcome:
    """Everything one event causes. Applying it twice must be the same as applying it once."""

    event_key: str
    effects: tuple[Effect, ...] = ()  # in step order
    contact_name: str | None = None  # profile name to record on the contact
    wait_before: WaitState | None = None
    wait_after: WaitState | None = None
    timers_add: tuple[Timer, ...] = ()
    timers_cancel: tuple[Timer, ...] = ()
    run: RunRecord | None = None
    failure: FlowFailure | None = None
    ignored: str | None = None  # why the event changed nothing ("no-match", "stale-timer", ...)
    hold: bool = False  # the message arrived during a delay: kept, in order, for later (SPEC §5.1)
    released: bool = False  # a held message, handled now: it leaves the held list
    ended: RunRecord | None = None  # an earlier run this event ended (interrupted) before `run` started

    # Cached: an outcome is read many times on the hot path (cap, commit size, ops, metrics) and is
    # never changed (dataclasses.replace makes a new one, with empty caches).
    @cached_property
    def outbox(self) -> tuple[OutboxMessage, ...]:
        return tuple([e for e in self.effects if type(e) is OutboxMessage])

    @cached_property
    def webhooks(self) -> tuple[WebhookEvent, ...]:
        return tuple([e for e in self.effects if type(e) is WebhookEvent])

    @cached_property
    def attributes(self) -> tuple[AttributeWrite, ...]:
        """Attribute writes in order: a later write of a key wins."""
        return tuple([e for e in self.effects if type(e) is AttributeWrite])

    @cached_property
    def output_chars(self) -> int:
        """The size of what this outcome writes to the output streams (field values, in characters)."""
        total = 0
        for effect in self.effects:
            if type(effect) is OutboxMessage or type(effect) is WebhookEvent:
                total += effect.chars
        return total

    @cached_property
    def changes_contact(self) -> bool:
        """Whether the outcome writes attributes or tags (read twice per event: the conversation's
        next event and the runtime's contact; a tuple of types, as `A | B` makes a union object per
        test)."""
        return any(isinstance(effect, _CONTACT_EFFECTS) for effect in self.effects)

    @property
    def handed_off(self) -> bool:
        """Whether this event handed the contact to an agent (a handoff step ran)."""
        return self.wait_after is not None and self.wait_after.kind == "handoff" and self.wait_before != self.wait_after

    @property
    def released_from_agent(self) -> bool:
        """Whether this event ended the contact's time with an agent (release, or its TTL)."""
        return self.wait_before is not None and self.wait_before.kind == "handoff" and self.wait_after is None

    @property
    def wait_changed(self) -> bool:
        return self.wait_before != self.wait_after
