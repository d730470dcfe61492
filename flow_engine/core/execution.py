"""Running the steps of one run from a position, collecting effects, until it ends or pauses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

from flow_engine.core.control import Control
from flow_engine.core.graph import Flow
from flow_engine.core.ids import derive_own
from flow_engine.core.inbound import Event, Message
from flow_engine.core.outcome import (
    AttributeWrite,
    Contact,
    Effect,
    FlowFailure,
    Jumped,
    OutboxMessage,
    Outcome,
    RunRecord,
    RunStatus,
    TagWrite,
    Timer,
    WaitState,
    WebhookEvent,
    with_tag,
)
from flow_engine.core.steps.base import _End
from flow_engine.core.steps.wait_for_reply import WaitForReply
from flow_engine.core.template import placeholder_values, render_deep
from flow_engine.core.trail import entry, step_kind


class Execution:
    """One event's work on one run: the steps it runs and everything they cause."""

    def __init__(
        self,
        flow: Flow,
        event: Event,
        contact: Contact,
        now_ms: int,
        control: Control,
        *,
        run_id: str,
        intent: str,
        text: str,
        wait_before: WaitState | None,
        timers_cancel: tuple[Timer, ...] = (),
        steps_before: int = 0,
        ended: RunRecord | None = None,
    ) -> None:
        self.flow, self.event, self.now_ms, self.control = flow, event, now_ms, control
        self.run_id, self.intent, self.text = run_id, intent, text
        self.wait_before, self.timers_cancel, self.ended = wait_before, timers_cancel, ended
        self.phone = contact.phone or event.contact
        self.new_name = new_name(event, contact)
        # The stored name wins; a new contact is greeted by its WhatsApp profile name.
        self.name = contact.name or (event.name or "" if isinstance(event, Message) else "")
        self.attributes = dict(contact.attributes)
        self.trace_id = derive_own(event.key, "trace")
        self.effects: list[Effect] = []
        self.sent = 0
        self.webhooks_sent = 0
        self.steps = steps_before  # run since the contact last spoke: a timer-driven loop adds up too
        self._values: dict[str, Any] | None = None
        self.handoff: dict[str, Any] | None = None  # set by a handoff step: recorded in the run's context
        # A/B variants chosen in this run (split), by step location: carried by the run's wait state.
        self.variants: dict[str, str] = dict(wait_before.variants) if wait_before is not None and \
            wait_before.run_id == run_id else {}
        # The run's trail: this event's entries, numbered on from the run's count so far.
        self.trail_from = wait_before.trail if wait_before is not None and wait_before.run_id == run_id else 0
        self.trail: list[dict[str, Any]] = []

    def values(self) -> dict[str, Any]:
        if self._values is None:
            self._values = placeholder_values(self.name, self.phone, self.attributes, self.text)
        return self._values

    def fill(self, value: Any, templated: bool) -> Any:
        """A step's JSON value with its placeholders rendered (shared as is when it has none)."""
        return render_deep(value, self.values()) if templated else value

    def send(self, kind: Literal["text", "template", "media"], content: Any) -> None:
        self.sent += 1
        self.effects.append(
            OutboxMessage(
                org_id=self.event.org_id,
                channel_id=self.event.channel_id,
                to=self.event.contact,
                type=kind,
                content=content,
                client_id=derive_own(self.event.key, "out", self.sent - 1),
                trace_id=self.trace_id,
                orig_text=self.text,
                run_id=self.run_id,
            )
        )

    def save(self, key: str, value: Any) -> None:
        """Write a contact attribute: for the steps that follow, and as an effect for the runtime."""
        self.attributes[key] = value
        self.effects.append(AttributeWrite(key, value))
        self._values = None

    def tag(self, tag: str, present: bool) -> None:
        """Add (`present`) or remove a tag of the contact (`contacts.attributes.tags`)."""
        self.attributes["tags"] = with_tag(self.attributes, tag, present)
        self.effects.append(TagWrite(tag, present))
        self._values = None

    def jumped(self, path: str, index: int, via: str, target: str) -> None:
        """Record that the run jumps from step `index` of `path` to `target` (a trace effect)."""
        self.effects.append(Jumped(f"{path}:{index}", via, target))
        if self.trail:  # the jumping step's own entry
            self.trail[-1]["via"], self.trail[-1]["to"] = via, target

    def note(self, where: str, kind: str, via: str | None = None, to: str | None = None) -> None:
        """A trail entry that is not a step running: entering the flow, or a paused run resuming."""
        self.trail.append(entry(where, self.now_ms, kind, via, to))

    def run_from(self, path: str, start: int) -> Outcome:
        """Run from step `start` of `path`, following jumps, until the run pauses, ends or fails.

        Each step runs itself (core/steps/): it says where the run goes next — the next step
        (None), the first step of a path (its name), the end (END) — or returns the Outcome that
        pauses or fails the run."""
        steps = self.flow.paths.get(path, ())
        index, last_path, last_index = start, path, max(start - 1, 0)
        max_steps = self.control.max_steps  # the loop guard
        while index < len(steps):
            last_path, last_index = path, index
            if self.steps >= max_steps:
                return self.fail(f"{path}:{index}", f"paths.{path}[{index}]: loop-limit: more than {max_steps} "
                                                    "steps without a reply from the contact", code="loop-limit")
            self.steps += 1
            step = steps[index]
            self.trail.append({"s": f"{path}:{index}", "t": self.now_ms, "k": step_kind(step)})
            target = step.run(self, path, index)
            if target is None:
                index += 1
            elif isinstance(target, str):
                path, index, steps = target, 0, self.flow.paths.get(target, ())
            elif isinstance(target, _End):
                break
            else:
                return cast(Outcome, target)  # paused or failed
        return self.finish("completed", f"{last_path}:{last_index}", None)

    def webhook(self, path: str, index: int, data: Any, kind: str = "flow.webhook") -> None:
        self.webhooks_sent += 1
        self.effects.append(
            WebhookEvent(
                org_id=self.event.org_id,
                event_id=derive_own(self.event.key, "webhook", self.webhooks_sent - 1),
                ts_ms=self.now_ms,
                body={
                    "flow_id": self.flow.id,
                    "run_id": self.run_id,
                    "path": path,
                    "step_index": index,
                    "data": data,
                    "input_text": self.text,
                    "contact_phone": self.phone,
                    "channel_id": self.event.channel_id,
                },
                type=kind,
            )
        )

    def hand_off(self, path: str, index: int, queue: str | None, note: Any) -> Outcome:
        """The `handoff` step: one `flow.handoff` event, the run completes, and the contact is with an
        agent (a wait of kind "handoff") until released, at the latest when its timer fires."""
        self.webhook(path, index, {"queue": queue, "note": note}, kind="flow.handoff")
        wait = WaitState(
            run_id=self.run_id, flow_id=self.flow.id, flow_version=self.flow.version, path=path, index=index,
            kind="handoff", token=derive_own(self.event.key, "timer", size_bytes=8),
            due_ms=self.now_ms + self.control.handoff_ttl_ms, trigger_text=self.text, intent=self.intent,
            since_ms=self.now_ms, queue=queue or "",
        )
        self.handoff = {"queue": queue, "note": note}
        return self.finish("completed", f"{path}:{index}", wait, (timer_of(wait, self.event),))

    def pause(
        self, path: str, index: int, kind: Literal["reply", "delay"], after_ms: int | None, step: WaitForReply | None
    ) -> Outcome:
        token = derive_own(self.event.key, "timer", size_bytes=8)  # short: it is kept twice per pending wait
        due_ms = None if after_ms is None else self.now_ms + after_ms
        expires = False
        if kind == "reply":  # a reply wait always has a timer: its own timeout, or the run's expiry first
            expire_ms = self.now_ms + self.control.expire_ms(self.flow)
            if due_ms is None or expire_ms < due_ms:
                due_ms, expires = expire_ms, True
        wait = WaitState(
            run_id=self.run_id,
            flow_id=self.flow.id,
            flow_version=self.flow.version,
            path=path,
            index=index,
            kind=kind,
            token=token,
            due_ms=due_ms,
            trigger_text=self.text,
            intent=self.intent,
            expires=expires,
            steps=self.steps,
            variants=tuple(sorted(self.variants.items())),
            trail=self.trail_from + len(self.trail),
        )
        timers = () if due_ms is None else (timer_of(wait, self.event),)
        waiting_for: dict[str, Any] = {"kind": kind, "step": f"{path}:{index}", "token": token, "due_ms": due_ms}
        if step is not None:
            waiting_for.update(pattern=step.pattern, timeout_path=step.timeout_path, expires=expires)
        return self.finish("running", f"{path}:{index}", wait, timers, waiting_for)

    def fail(self, last_step: str, problem: str, code: str = "flow-error") -> Outcome:
        return self.finish("failed", last_step, None, error=problem, code=code)

    def finish(
        self,
        status: RunStatus,
        last_step: str,
        wait_after: WaitState | None,
        timers_add: tuple[Timer, ...] = (),
        waiting_for: Mapping[str, Any] | None = None,
        error: str | None = None,
        code: str = "flow-error",
    ) -> Outcome:
        context: dict[str, Any] = {
            "intent": self.intent,
            "contact": self.event.contact,
            "channel_id": self.event.channel_id,
            "trigger_text": self.text,
            "waiting_for": waiting_for,
        }
        if self.variants:
            context["variants"] = dict(self.variants)
        if self.handoff is not None:
            context["handoff"] = self.handoff
        if status != "running":
            context["ended"] = status if error is None else code
        if error is not None:
            context["error"] = error
        if self.trail:
            self.trail[-1]["end"] = context.get("ended", "waiting")
        return Outcome(
            event_key=self.event.key,
            effects=tuple(self.effects),
            contact_name=self.new_name,
            wait_before=self.wait_before,
            wait_after=wait_after,
            timers_add=timers_add,
            timers_cancel=self.timers_cancel,
            run=RunRecord(self.run_id, self.flow.id, self.flow.version, status, last_step, context,
                          tuple(self.trail), self.trail_from),
            failure=None if error is None else FlowFailure(code, error),
            ended=self.ended,
        )


def timer_of(wait: WaitState, event: Event) -> Timer:
    """The timer that resumes `wait` (which must have a due time)."""
    assert wait.due_ms is not None
    return Timer(
        token=wait.token,
        due_ms=wait.due_ms,
        org_id=event.org_id,
        channel_id=event.channel_id,
        contact=event.contact,
        run_id=wait.run_id,
        reason=wait.timer_reason,
    )


def new_name(event: Event, contact: Contact) -> str | None:
    """The WhatsApp profile name to record on a contact that has no name yet."""
    name = event.name if isinstance(event, Message) else None
    return name if name and not contact.name else None
