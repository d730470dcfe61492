"""Bounds on the work one event may cause, so that one tenant's flow cannot stall the others.

Every output of an event is written by one atomic Redis script; a flow of 2,000 webhook steps with
64 KiB texts made that script hold Redis (every tenant's traffic) for 1.5 s. So an event whose outputs
exceed `max_outputs` or `max_bytes` causes none of them: its run fails with `output-limit`, located
at the step where the run stopped, and the event goes to the DLQ. Pure: the runtime and the
simulator apply the same rule.
"""

from __future__ import annotations

from dataclasses import replace

from flow_engine.core.outcome import FlowFailure, Outcome

OUTPUT_LIMIT = "output-limit"


def cap_outputs(outcome: Outcome, *, max_outputs: int, max_bytes: int) -> Outcome:
    """`outcome` as it is when within the limits; else the failed run that replaces it."""
    outputs = len(outcome.outbox) + len(outcome.webhooks)
    if outputs == 0 or (outputs <= max_outputs and outcome.output_chars <= max_bytes):
        return outcome
    size = outcome.output_chars
    where = outcome.run.last_step if outcome.run is not None else "?"
    detail = (f"{where}: one message caused {outputs} outputs ({size} characters), more than the limit of "
              f"{max_outputs} outputs or {max_bytes} characters")
    run = None
    if outcome.run is not None:
        trail = outcome.run.trail
        if trail:  # the event's last entry says how it ended
            trail = (*trail[:-1], {**trail[-1], "end": OUTPUT_LIMIT})
        run = replace(outcome.run, status="failed", context={**outcome.run.context, "waiting_for": None,
                                                              "error": detail}, trail=trail)
    return replace(outcome, effects=(), wait_after=None, timers_add=(), run=run,
                   failure=FlowFailure(OUTPUT_LIMIT, detail))
