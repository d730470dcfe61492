"""Every kind of error the engine tells apart, under one base, `FlowEngineError`.

Callers catch these classes, never an error's text: a Redis error reply of the engine's scripts or of
the stream commands is translated where it is raised (`flow_engine.adapters.replies`), the way
dramatiq's Redis broker does. Importing this module does no I/O.

- `SettingsError`: a setting has a value the engine cannot run with (processes print it and exit 2).
- `InvalidPayload`: an nf:incoming entry is malformed (to the DLQ as `invalid-payload`).
- `PatternError`: a flow's pattern is not valid RE2 (a validation problem).
- `InvalidFlow`: a flow file cannot be read, is not JSON, or is not a valid flow.
- `SchemaError`, `DatabaseUnreachable`: the database lacks the engine's tables, or cannot be read.
- `LaneFailure`: processing a lane's head event failed transiently; the task retries it.
- `Fenced`: a lease or lock was lost: this process may not hand on or commit.
- `SecretMissing`: the engine's secret key is missing in Redis (the caller creates it and tries again).
- `StreamGone`: nf:incoming or its consumer group was deleted (the bridge makes them again).
- `GroupExists`: the consumer group exists already.
"""

from __future__ import annotations

import redis

from flow_engine.core.errors import FlowEngineError, InvalidPayload, PatternError

__all__ = [
    "DatabaseUnreachable",
    "Fenced",
    "FlowEngineError",
    "GroupExists",
    "InvalidFlow",
    "InvalidPayload",
    "LaneFailure",
    "PatternError",
    "SchemaError",
    "SecretMissing",
    "SettingsError",
    "StreamGone",
]


class SettingsError(FlowEngineError, ValueError):
    """A setting has a value the engine cannot run with."""


class InvalidFlow(FlowEngineError):
    """A flow file cannot be read, is not JSON, or is not a valid flow (the text lists its problems)."""


class SchemaError(FlowEngineError):
    """The database lacks what a process needs; the message is one line naming it and the fix."""


class DatabaseUnreachable(SchemaError):
    """The schema could not be read: an outage, which processes ride out (retries), not a refusal."""


class LaneFailure(FlowEngineError):
    """Processing the lane's head event failed transiently (Redis or the database unavailable, or a
    cause not known to be permanent): the task retries it. Its text is safe to log (no data)."""

    def __init__(self, cause: BaseException, progressed: bool) -> None:
        from flow_engine.adapters.failures import dlq_text, log_text

        super().__init__(log_text(cause))
        self.detail = dlq_text(cause)  # for the DLQ entry, should the retries run out
        self.progressed = progressed  # events before the failing one were committed


class RedisReply(FlowEngineError, redis.ResponseError):
    """An error reply of Redis that the engine acts on (the base of the kinds below). Still a
    `redis.ResponseError`, so a handler of every Redis error handles these too."""


class Fenced(RedisReply):
    """The bridge lease (or a lane lock) is held by another process: this one may not go on."""


class SecretMissing(RedisReply):
    """The engine's secret key is missing: create it (`signing.load_secret`) and call again."""


class StreamGone(RedisReply):
    """nf:incoming or its consumer group no longer exists (deleted while the engine ran)."""


class GroupExists(RedisReply):
    """The consumer group exists already (creating it again is a no-op)."""
