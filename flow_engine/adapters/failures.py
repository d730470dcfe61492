"""What a failure while processing an event means: permanent (the event's data: no retry can help, so
it goes to the DLQ at once) or transient (Redis or the database unavailable: retried with backoff).
And how it is described without personal data: the DLQ says what went wrong, the logs say only its
class and code, never a statement's parameters (phone numbers, texts) or a database DETAIL line."""

from __future__ import annotations

import json

import redis
from sqlalchemy import exc as sa

# Errors of the data of one event: values a column refuses (too long, NUL, untranslatable, bad JSON),
# constraints it violates (a foreign key to an org the platform does not know), encodings.
_PERMANENT_DB = (sa.DataError, sa.IntegrityError)
_PERMANENT_PY = (UnicodeError, json.JSONDecodeError, RecursionError)


def is_permanent(exc: BaseException) -> bool:
    """True when retrying the same event cannot succeed; connection and availability errors, and
    anything not known to be about the data, are transient."""
    if isinstance(exc, redis.RedisError):
        return isinstance(exc, redis.DataError)
    if isinstance(exc, _PERMANENT_DB):
        return True
    if isinstance(exc, sa.StatementError) and not isinstance(exc, sa.DBAPIError):
        # raised by the driver before the database saw the statement: psycopg2's ValueError for a
        # NUL character, an encoding error
        return isinstance(exc.orig, ValueError | UnicodeError)
    return isinstance(exc, _PERMANENT_PY)


def _cause(exc: BaseException) -> BaseException:
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def log_text(exc: BaseException) -> str:
    """For logs: the exception's class (and the driver's class and SQLSTATE): no data at all."""
    cause = _cause(exc)
    code = getattr(cause, "pgcode", None)
    name = type(exc).__name__ if cause is exc else f"{type(exc).__name__} ({type(cause).__name__})"
    return f"{name}, SQLSTATE {code}" if code else name


def dlq_text(exc: BaseException) -> str:
    """For the DLQ entry (which holds the original payload anyway): the class and the first line of
    the cause's message, which names the problem (`DataError: value too long for type character
    varying(256)`) while its parameters and DETAIL lines are left out."""
    cause = _cause(exc)
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
