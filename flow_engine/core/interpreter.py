"""The interpreter: (flow, event, wait state, contact, now) -> Outcome. Pure and deterministic.

Every id in the outcome derives from the event's key, so processing the same event twice yields the
same outcome, which is what makes the runtime's effects idempotent. Which messages wait their turn
while a run is in a delay is the conversation's business (core/conversation.py); here an event is
decided alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from flow_engine.core.control import DEFAULT_CONTROL, Control
from flow_engine.core.execution import Execution, new_name, timer_of
from flow_engine.core.graph import Flow, WaitForReply
from flow_engine.core.ids import derive_own
from flow_engine.core.inbound import Event, Message, Release, Resume
from flow_engine.core.intents import builtin_intent, classify, fallback_reply, match_words, normalize
from flow_engine.core.outcome import Contact, FlowFailure, Outcome, RunRecord, RunStatus, Timer, WaitState
from flow_engine.core.template import render
from flow_engine.core.trail import START, entry

_SAME: Any = object()  # `active` not given: the org's active flow is `flow`


def route(flow: Flow, text: str, intent: str | None = None) -> tuple[str, str | None]:
    """(intent, path) for a text entering `flow`: map[intent], else map["default"], else path_default.
    The first intent node routes, wherever it stands among the graph's nodes. `intent`: decided
    outside (the NLP service); the node's own keywords come first, the built-in ones last."""
    node = flow.nodes[0] if flow.nodes else None
    words = normalize(text)  # once, for the node's keywords and the built-in ones
    intent = match_words(words, node.keywords if node else ()) or intent or builtin_intent(words)
    routes: Mapping[str, str] = node.routes if node else {}
    for path in (routes.get(intent), routes.get("default"), "path_default"):
        if path is not None and path in flow.paths:
            return intent, path
    return intent, None


def _cancel(wait: WaitState, event: Event) -> tuple[Timer, ...]:
    return (timer_of(wait, event),) if wait.due_ms is not None else ()


def _ended_run(event: Event, wait: WaitState, status: RunStatus, now_ms: int, via: str, **context: Any) -> RunRecord:
    """The record of a paused run that ends without running a step (expired, interrupted, failed);
    its trail says what ended it (`via`: expire, interrupt, or what resumed it)."""
    fields = {"contact": event.contact, "channel_id": event.channel_id, "trigger_text": wait.trigger_text,
              "intent": wait.intent, "ended": status, **context}
    where = f"{wait.path}:{wait.index}"
    trail = (entry(where, now_ms, "resume", via, end=str(fields["ended"])),)
    return RunRecord(wait.run_id, wait.flow_id, wait.flow_version, status, where, fields, trail, wait.trail)


def _failed_run(event: Event, wait: WaitState, reason: str, now_ms: int, via: str) -> Outcome:
    """A paused run that cannot go on: it fails with `reason`; its wait and timer are cleared."""
    return Outcome(
        event_key=event.key,
        wait_before=wait,
        wait_after=None,
        timers_cancel=_cancel(wait, event),
        run=_ended_run(event, wait, "failed", now_ms, via, ended="flow-error", error=reason),
        failure=FlowFailure("flow-error", reason),
    )


def _start(
    flow: Flow | None, event: Message, contact: Contact, now_ms: int, fallback_language: str, control: Control,
    *, ending: WaitState | None = None, ended: RunRecord | None = None, intent: str | None = None,
) -> Outcome:
    """A message from a contact with no paused run (or whose run it just `ended`): enter the flow,
    or send the fixed reply."""
    cancel = _cancel(ending, event) if ending is not None else ()
    run_id = derive_own(event.key, "run") if flow is not None else ""
    if flow is not None and not flow.valid:
        reason = "; ".join(flow.problems)
        context = {"contact": event.contact, "channel_id": event.channel_id, "trigger_text": event.text,
                   "ended": "flow-error", "error": reason}
        return Outcome(
            event_key=event.key, wait_before=ending, timers_cancel=cancel, ended=ended,
            run=RunRecord(run_id, flow.id, flow.version, "failed", "", context,
                          (entry(START, now_ms, "start", end="flow-error"),)),
            failure=FlowFailure("flow-error", reason),
        )
    intent, path = route(flow, event.text, intent) if flow is not None else (classify(event.text), None)
    execution = Execution(
        flow or Flow((), {}, ()), event, contact, now_ms, control, run_id=run_id, intent=intent, text=event.text,
        wait_before=ending, timers_cancel=cancel, ended=ended,
    )
    if path is not None:
        execution.note(START, "start", intent, path)
        return execution.run_from(path, 0)
    # No flow, or no path for this intent: the fixed reply, and no run to record.
    execution.send("text", fallback_reply(intent, fallback_language))
    return Outcome(event_key=event.key, effects=tuple(execution.effects), contact_name=new_name(event, contact),
                   wait_before=ending, timers_cancel=cancel, ended=ended)


def interpret(
    flow: Flow | None,
    event: Event,
    wait: WaitState | None,
    contact: Contact,
    now_ms: int,
    *,
    fallback_language: str = "es",
    control: Control = DEFAULT_CONTROL,
    active: Flow | None = _SAME,
    held: int = 0,
    intent: str | None = None,
) -> Outcome:
    """Decide what `event` causes.

    `flow` is the flow the event runs on: the flow of the paused run when `wait` is set (None when
    that flow no longer exists), else the org's active flow (None when it has none). `active` is the
    org's active flow, which an interrupted run's message enters (default: `flow`). `held` counts
    the contact's messages already held during the current delay. `intent`, for a message entering
    the flow: decided by the runtime (NLP service), else by keywords.
    """
    active = flow if active is _SAME else active
    if isinstance(event, Release):  # a control entry: the agent is done (SPEC §5.3)
        if wait is None or wait.kind != "handoff":
            return Outcome(event_key=event.key, wait_before=wait, wait_after=wait, ignored="not-with-agent")
        return Outcome(event_key=event.key, wait_before=wait, wait_after=None, timers_cancel=_cancel(wait, event))
    if isinstance(event, Resume):
        if wait is None or wait.token != event.token or event.reason != wait.timer_reason:
            return Outcome(event_key=event.key, wait_before=wait, wait_after=wait, ignored="stale-timer")
        if event.reason == "handoff":  # FLOW_ENGINE_HANDOFF_TTL_MIN passed: released; its timer fired
            return Outcome(event_key=event.key, wait_before=wait, wait_after=None)
        if event.reason == "expire":  # its timer fired: nothing to cancel
            minutes = (flow or Flow((), {}, ())).expire_after_min or control.expire_after_min
            return Outcome(event_key=event.key, wait_before=wait, wait_after=None,
                           run=_ended_run(event, wait, "expired", now_ms, "expire", expired_after_min=minutes))
        return _continue(flow, event, wait, contact, now_ms, control, reply=None)
    if wait is None:
        return _start(flow, event, contact, now_ms, fallback_language, control, intent=intent)
    if wait.kind == "handoff":  # with an agent: no bot output, interrupt words included
        return Outcome(event_key=event.key, wait_before=wait, wait_after=wait, ignored="handoff")
    if control.interrupts(flow, event.text) and (wait.kind == "reply" or held == 0):
        # Behind held messages an interrupt word waits its turn: order first.
        ended = _ended_run(event, wait, "interrupted", now_ms, "interrupt", interrupted_by=event.text.strip())
        return _start(active, event, contact, now_ms, fallback_language, control, ending=wait, ended=ended)
    if wait.kind == "delay":
        if held >= control.max_held:
            return Outcome(event_key=event.key, wait_before=wait, wait_after=wait, failure=FlowFailure(
                "held-limit", f"{control.max_held} messages already held while the run is in a delay"))
        return Outcome(event_key=event.key, wait_before=wait, wait_after=wait, hold=True)
    if flow is not None and flow.valid:
        step = _step_at(flow, wait)
        if isinstance(step, WaitForReply) and not step.matches(event.text):
            return _no_match(flow, step, event, wait, contact, now_ms, control)
    return _continue(flow, event, wait, contact, now_ms, control, reply=event)


def _step_at(flow: Flow, wait: WaitState) -> object:
    steps = flow.paths.get(wait.path, ())
    return steps[wait.index] if wait.index < len(steps) else None


def _no_match(
    flow: Flow, step: WaitForReply, event: Message, wait: WaitState, contact: Contact, now_ms: int, control: Control
) -> Outcome:
    """A reply that does not match: re-prompt, end the wait at `max_attempts`, or ignore it."""
    attempts = wait.attempts + 1 if step.max_attempts is not None else wait.attempts
    if step.max_attempts is not None and attempts >= step.max_attempts:
        return _continue(flow, event, wait, contact, now_ms, control, reply=None, gave_up=event)
    after = replace(wait, attempts=attempts)
    timers: tuple[Timer, ...] = ()
    if wait.kind == "reply" and wait.due_ms is None:
        # A wait stored before waits expired: it expires from now on.
        after = replace(after, due_ms=now_ms + control.expire_ms(flow), expires=True)
        timers = (timer_of(after, event),)
    if step.no_match_text is None:
        return Outcome(event_key=event.key, wait_before=wait, wait_after=after, timers_add=timers,
                       ignored="no-match")
    execution = Execution(flow, event, contact, now_ms, control, run_id=wait.run_id, intent=wait.intent,
                          text=event.text, wait_before=wait)
    execution.send("text", render(step.no_match_text, execution.values()))
    return Outcome(event_key=event.key, effects=tuple(execution.effects), contact_name=execution.new_name,
                   wait_before=wait, wait_after=after, timers_add=timers)


def _continue(
    flow: Flow | None, event: Event, wait: WaitState, contact: Contact, now_ms: int, control: Control, *,
    reply: Message | None, gave_up: Message | None = None,
) -> Outcome:
    """Resume a paused run: after a matching reply, a delay, a reply timeout, or the last attempt
    (`gave_up`: the non-matching reply that ends the wait as if it had timed out)."""
    via = "attempts" if gave_up is not None else "reply" if reply is not None else \
        "delay" if wait.kind == "delay" else "timeout"
    if flow is None:
        return _failed_run(event, wait, f"flow {wait.flow_id} v{wait.flow_version} no longer exists", now_ms, via)
    if not flow.valid:
        return _failed_run(event, wait, "; ".join(flow.problems), now_ms, via)
    message = reply or gave_up
    execution = Execution(
        flow, event, contact, now_ms, control, run_id=wait.run_id, intent=wait.intent,
        text=message.text if message is not None else wait.trigger_text,
        wait_before=wait, timers_cancel=_cancel(wait, event) if message is not None else (),
        steps_before=0 if message is not None else wait.steps,  # the contact spoke: the loop guard restarts
    )
    execution.note(f"{wait.path}:{wait.index}", "resume", via)
    step = _step_at(flow, wait)
    if reply is None and wait.kind == "reply" and isinstance(step, WaitForReply) and step.timeout_path:
        return execution.run_from(step.timeout_path, 0)
    if reply is not None and wait.kind == "reply" and isinstance(step, WaitForReply) and step.save_as:
        execution.save(step.save_as, step.capture(reply.text))
    return execution.run_from(wait.path, wait.index + 1)
