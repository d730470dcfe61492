"""Wall-clock time in epoch milliseconds: the unit of stream ids, timer scores and due times."""

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
