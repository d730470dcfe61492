"""The errors the core raises, and the engine's one base error (pure: the core may import it).

`flow_engine.errors` is the place to import every error kind from; it re-exports these.
"""

from __future__ import annotations


class FlowEngineError(Exception):
    """Base of every error the engine raises on purpose. Its text is one line that names where the
    problem is (a setting, a field of an entry, a step of a flow, a table), safe to show an operator."""


class InvalidPayload(FlowEngineError, ValueError):
    """A permanent problem with an entry: it goes to the DLQ as `invalid-payload` with this reason."""


class PatternError(FlowEngineError, ValueError):
    """The pattern is not a valid RE2 expression."""
