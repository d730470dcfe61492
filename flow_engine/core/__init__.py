"""The pure core: the flow language (graph, steps/), inbound parsing, the interpreter, the
simulator, and the errors it raises.

May import: the standard library's pure modules, re2, and flow_engine.core only — no Redis,
SQLAlchemy, Celery, clock or settings (tests/test_core_purity.py), so a run can be replayed and
simulated exactly."""

from flow_engine.core.graph import Flow, parse_flow, validate
from flow_engine.core.inbound import Event, InvalidPayload, Message, Resume, parse_entry
from flow_engine.core.interpreter import interpret
from flow_engine.core.outcome import Contact, Outcome, WaitState

__all__ = [
    "Contact",
    "Event",
    "Flow",
    "InvalidPayload",
    "Message",
    "Outcome",
    "Resume",
    "WaitState",
    "interpret",
    "parse_entry",
    "parse_flow",
    "validate",
]
