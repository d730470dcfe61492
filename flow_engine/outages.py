"""Riding out a Redis outage: the loop of the long-running processes (bridge, timer loop).

While Redis is unreachable an iteration fails with a connection or timeout error; the loop logs it,
waits 0.1 s, doubling up to 5 s, and tries again, until the process is told to stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

FIRST_BACKOFF_S = 0.1
LONGEST_BACKOFF_S = 5.0
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


def run_until_stopped(stop: threading.Event, step: Callable[[], bool | None], *, what: str, log: logging.Logger,
                      after_outage: Callable[[], None] | None = None) -> None:
    """Call `step` until `stop` is set. `step` returns False when it did not get through (the backoff
    stays as it is), anything else when it did (the next outage starts again at 0.1 s).
    `after_outage` runs after each wait for Redis (to drop connections, to re-check a lease)."""
    backoff_s = FIRST_BACKOFF_S
    while not stop.is_set():
        try:
            if step() is not False:
                backoff_s = FIRST_BACKOFF_S
        except REDIS_DOWN as exc:
            log.warning("%s: Redis unavailable (%s); retrying in %.1f s", what, exc, backoff_s)
            stop.wait(backoff_s)
            backoff_s = min(backoff_s * 2, LONGEST_BACKOFF_S)
            if after_outage is not None:
                after_outage()
