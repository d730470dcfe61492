"""The pure core: the flow language, inbound parsing and the interpreter. No I/O is imported here."""

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
