"""The interpreter: (flow, event, wait state, contact, now) -> Outcome. Pure and deterministic.

Every id in the outcome derives from the event's key, so processing the same event twice yields the
same outcome, which is what makes the runtime's effects idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from flow_engine.core.graph import (
    Delay,
    Flow,
    Invalid,
    SendMedia,
    SendTemplate,
    SendText,
    SetAttribute,
    WaitForReply,
    Webhook,
)
from flow_engine.core.ids import derive
from flow_engine.core.inbound import Event, Message, Resume
from flow_engine.core.intents import classify, fallback_reply, match
from flow_engine.core.outcome import (
    AttributeWrite,
    Contact,
    Effect,
    FlowFailure,
    OutboxMessage,
    Outcome,
    RunRecord,
    RunStatus,
    Timer,
    WaitState,
    WebhookEvent,
)
from flow_engine.core.template import placeholder_values, render, render_deep


def route(flow: Flow, text: str, intent: str | None = None) -> tuple[str, str | None]:
    """(intent, path) for a text entering `flow`: map[intent], else map["default"], else path_default.
    `intent`: decided outside (the NLP service); the node's own keywords come first, the built-in last."""
    node = flow.nodes[0] if flow.nodes else None
    intent = match(text, node.keywords if node else ()) or intent or classify(text)
    routes: Mapping[str, str] = node.routes if node else {}
    for path in (routes.get(intent), routes.get("default"), "path_default"):
        if path is not None and path in flow.paths:
            return intent, path
    return intent, None


class _Execution:
    """Runs steps of one run from a position, collecting effects, until it ends or pauses."""

    def __init__(
        self,
        flow: Flow,
        event: Event,
        contact: Contact,
        now_ms: int,
        *,
        run_id: str,
        intent: str,
        text: str,
        wait_before: WaitState | None,
        timers_cancel: tuple[Timer, ...] = (),
    ) -> None:
        self.flow, self.event, self.now_ms = flow, event, now_ms
        self.run_id, self.intent, self.text = run_id, intent, text
        self.wait_before, self.timers_cancel = wait_before, timers_cancel
        self.phone = contact.phone or event.contact
        self.new_name = _new_name(event, contact)
        # The stored name wins; a new contact is greeted by its WhatsApp profile name.
        self.name = contact.name or (event.name or "" if isinstance(event, Message) else "")
        self.attributes = dict(contact.attributes)
        self.trace_id = derive(event.key, "trace")
        self.effects: list[Effect] = []
        self.sent = 0
        self.webhooks_sent = 0
        self._values: dict[str, Any] | None = None

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
                client_id=derive(self.event.key, "out", self.sent - 1),
                trace_id=self.trace_id,
                orig_text=self.text,
                run_id=self.run_id,
            )
        )

    def run_from(self, path: str, start: int) -> Outcome:
        steps = self.flow.paths.get(path, ())
        last = f"{path}:{max(start - 1, 0)}"
        for index in range(start, len(steps)):
            step = steps[index]
            last = f"{path}:{index}"
            if isinstance(step, SendText):
                self.send("text", render(step.text, self.values()))
            elif isinstance(step, SendTemplate):
                components = self.fill(step.components, step.templated)
                self.send("template", {"name": step.name, "language": step.language, "components": components})
            elif isinstance(step, SendMedia):
                self.send("media", self.fill(step.media, step.templated))
            elif isinstance(step, Webhook):
                self.webhook(path, index, self.fill(step.data, step.templated))
            elif isinstance(step, SetAttribute):
                value = self.fill(step.value, step.templated)
                self.attributes[step.key] = value
                self.effects.append(AttributeWrite(step.key, value))
                self._values = None
            elif isinstance(step, Delay):
                return self.pause(path, index, "delay", step.ms, None)
            elif isinstance(step, WaitForReply):
                return self.pause(path, index, "reply", step.timeout_ms, step)
            elif isinstance(step, Invalid):
                return self.fail(last, step.problem)
        return self.finish("completed", last, None)

    def webhook(self, path: str, index: int, data: Any) -> None:
        self.webhooks_sent += 1
        self.effects.append(
            WebhookEvent(
                org_id=self.event.org_id,
                event_id=derive(self.event.key, "webhook", self.webhooks_sent - 1),
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
            )
        )

    def pause(
        self, path: str, index: int, kind: Literal["reply", "delay"], after_ms: int | None, step: WaitForReply | None
    ) -> Outcome:
        token = derive(self.event.key, "timer", size_bytes=8)  # short: it is kept twice per pending wait
        due_ms = None if after_ms is None else self.now_ms + after_ms
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
        )
        timers = () if due_ms is None else (timer_of(wait, self.event),)
        waiting_for: dict[str, Any] = {"kind": kind, "step": f"{path}:{index}", "token": token, "due_ms": due_ms}
        if step is not None:
            waiting_for.update(pattern=step.pattern, timeout_path=step.timeout_path)
        return self.finish("running", f"{path}:{index}", wait, timers, waiting_for)

    def fail(self, last_step: str, problem: str) -> Outcome:
        return self.finish("failed", last_step, None, error=problem)

    def finish(
        self,
        status: RunStatus,
        last_step: str,
        wait_after: WaitState | None,
        timers_add: tuple[Timer, ...] = (),
        waiting_for: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> Outcome:
        context: dict[str, Any] = {
            "intent": self.intent,
            "contact": self.event.contact,
            "channel_id": self.event.channel_id,
            "trigger_text": self.text,
            "waiting_for": waiting_for,
        }
        if error is not None:
            context["error"] = error
        return Outcome(
            event_key=self.event.key,
            effects=tuple(self.effects),
            contact_name=self.new_name,
            wait_before=self.wait_before,
            wait_after=wait_after,
            timers_add=timers_add,
            timers_cancel=self.timers_cancel,
            run=RunRecord(self.run_id, self.flow.id, self.flow.version, status, last_step, context),
            failure=None if error is None else FlowFailure("flow-error", error),
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
        reason="delay" if wait.kind == "delay" else "timeout",
    )


def _new_name(event: Event, contact: Contact) -> str | None:
    """The WhatsApp profile name to record on a contact that has no name yet."""
    name = event.name if isinstance(event, Message) else None
    return name if name and not contact.name else None


def _failed_run(event: Event, wait: WaitState, reason: str) -> Outcome:
    """A paused run that cannot go on: it fails with `reason`; its wait and timer are cleared."""
    cancel = (timer_of(wait, event),) if wait.due_ms is not None else ()
    context = {"contact": event.contact, "channel_id": event.channel_id, "error": reason}
    return Outcome(
        event_key=event.key,
        wait_before=wait,
        wait_after=None,
        timers_cancel=cancel,
        run=RunRecord(wait.run_id, wait.flow_id, wait.flow_version, "failed", f"{wait.path}:{wait.index}", context),
        failure=FlowFailure("flow-error", reason),
    )


def _start(flow: Flow | None, event: Message, contact: Contact, now_ms: int, fallback_language: str,
           intent: str | None = None) -> Outcome:
    """A message from a contact with no paused run: enter the flow, or send the fixed reply."""
    run_id = derive(event.key, "run") if flow is not None else ""
    if flow is not None and not flow.valid:
        reason = "; ".join(flow.problems)
        context = {"contact": event.contact, "channel_id": event.channel_id, "trigger_text": event.text,
                   "error": reason}
        return Outcome(
            event_key=event.key,
            run=RunRecord(run_id, flow.id, flow.version, "failed", "", context),
            failure=FlowFailure("flow-error", reason),
        )
    intent, path = route(flow, event.text, intent) if flow is not None else (classify(event.text), None)
    execution = _Execution(
        flow or Flow((), {}, ()), event, contact, now_ms, run_id=run_id, intent=intent, text=event.text,
        wait_before=None,
    )
    if path is not None:
        return execution.run_from(path, 0)
    # No flow, or no path for this intent: the fixed reply, and no run to record.
    execution.send("text", fallback_reply(intent, fallback_language))
    return Outcome(event_key=event.key, effects=tuple(execution.effects), contact_name=_new_name(event, contact))


def interpret(
    flow: Flow | None,
    event: Event,
    wait: WaitState | None,
    contact: Contact,
    now_ms: int,
    *,
    fallback_language: str = "es",
    intent: str | None = None,
) -> Outcome:
    """Decide what `event` causes.

    `flow` is the flow the event runs on: the flow of the paused run when `wait` is set (None when
    that flow no longer exists), else the org's active flow (None when it has none). `intent`, for
    a message entering the flow: decided by the runtime (NLP service), else by keywords.
    """
    if isinstance(event, Resume):
        if wait is None or wait.token != event.token:
            return Outcome(event_key=event.key, wait_before=wait, wait_after=wait, ignored="stale-timer")
        return _continue(flow, event, wait, contact, now_ms, reply=None)
    if wait is None:
        return _start(flow, event, contact, now_ms, fallback_language, intent)
    if wait.kind == "delay":  # the run is busy: a message during a delay neither starts nor resumes one
        return Outcome(event_key=event.key, wait_before=wait, wait_after=wait, ignored="run-busy")
    if flow is not None and flow.valid:
        step = _step_at(flow, wait)
        if isinstance(step, WaitForReply) and not step.matches(event.text):
            return Outcome(event_key=event.key, wait_before=wait, wait_after=wait, ignored="no-match")
    return _continue(flow, event, wait, contact, now_ms, reply=event)


def _step_at(flow: Flow, wait: WaitState) -> object:
    steps = flow.paths.get(wait.path, ())
    return steps[wait.index] if wait.index < len(steps) else None


def _continue(
    flow: Flow | None, event: Event, wait: WaitState, contact: Contact, now_ms: int, *, reply: Message | None
) -> Outcome:
    """Resume a paused run: after a matching reply, a delay, or a reply timeout."""
    if flow is None:
        return _failed_run(event, wait, f"flow {wait.flow_id} v{wait.flow_version} no longer exists")
    if not flow.valid:
        return _failed_run(event, wait, "; ".join(flow.problems))
    cancel = (timer_of(wait, event),) if reply is not None and wait.due_ms is not None else ()
    execution = _Execution(
        flow, event, contact, now_ms, run_id=wait.run_id, intent=wait.intent,
        text=reply.text if reply is not None else wait.trigger_text,
        wait_before=wait, timers_cancel=cancel,
    )
    step = _step_at(flow, wait)
    if reply is None and wait.kind == "reply" and isinstance(step, WaitForReply) and step.timeout_path:
        return execution.run_from(step.timeout_path, 0)
    return execution.run_from(wait.path, wait.index + 1)
