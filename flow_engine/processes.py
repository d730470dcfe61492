"""Entry points of the long-running processes (bridge, timer loop): settings, logging, signals."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

from flow_engine import logs
from flow_engine import settings as settings_module


def load_settings_or_exit() -> settings_module.Settings:
    """Settings, or one line naming the bad one and exit code 2 (no traceback)."""
    try:
        return settings_module.get()
    except settings_module.SettingsError as exc:
        print(f"flow-engine: {exc}", file=sys.stderr)
        sys.exit(2)


def start(process: str, settings: settings_module.Settings) -> None:
    """Logging and, when FLOW_ENGINE_METRICS_PORT is set, the /metrics endpoint of this process."""
    logs.setup(process)
    if settings.metrics_port is not None:
        from flow_engine import metrics

        metrics.serve_or_exit(settings.metrics_port, settings.metrics_addr)


def stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        logging.getLogger("flow_engine").info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def enqueue_lane(lane: str, new: bool = True) -> None:
    """A lane armed by the bridge (`new`: with a conversation's few events, so it goes first) or
    re-armed by the sweep."""
    from flow_engine.tasks import enqueue

    enqueue(lane, new=new)


def run_bridge() -> None:
    settings = load_settings_or_exit()
    start("bridge", settings)
    from bridge.loop import Bridge
    from flow_engine import tasks  # noqa: F401 - loaded now, not on the first enqueue of a busy moment

    stop = stop_on_signals()
    logging.getLogger("flow_engine.bridge").info("bridge %s starting", settings.consumer)
    Bridge(settings, enqueue_lane).run(stop)


def run_scheduler() -> None:
    settings = load_settings_or_exit()
    start("scheduler", settings)
    from flow_engine import tasks  # noqa: F401 - loaded now, not on the first re-arm
    from flow_engine.scheduler import TimerLoop

    stop = stop_on_signals()
    convert_leftover_timers(settings)
    logging.getLogger("flow_engine.scheduler").info("timer loop starting")
    TimerLoop(settings, enqueue_lane).run(stop)


def convert_leftover_timers(settings: settings_module.Settings) -> None:
    """Timers of the previous engine (scored in seconds) would all fire at once: convert them before
    the first tick. Only then does the timer loop touch the database (for the orgs' active flows)."""
    import redis

    from flow_engine.adapters import legacy, schema
    from flow_engine.adapters.keys import Keys
    from flow_engine.adapters.scripts import connect

    log = logging.getLogger("flow_engine.scheduler")
    client, keys = connect(settings.redis_url), Keys.of(settings)
    try:
        if not legacy.has_old_timers(client, keys):
            return
        report = legacy.convert_with_database(client, keys, settings.database_url)
    except redis.RedisError as exc:  # the loop waits for Redis; `flow-engine state migrate` converts later
        log.warning("timer loop: cannot look for the previous engine's timers: %s", exc)
        return
    except schema.SchemaError as exc:  # converting needs the orgs' active flows: better late than wrong
        print(f"flow-engine scheduler: the previous engine's timers wait to be converted, and {exc}",
              file=sys.stderr)
        sys.exit(2)
    finally:
        client.close()
    for line in report.lines():
        log.info("switchover: %s", line)
