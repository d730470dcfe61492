"""Entry points of the long-running processes (bridge, timer loop): settings, logging, signals."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from flow_engine import settings as settings_module


def load_settings_or_exit() -> settings_module.Settings:
    """Settings, or one line naming the bad one and exit code 2 (no traceback)."""
    try:
        return settings_module.get()
    except settings_module.SettingsError as exc:
        print(f"flow-engine: {exc}", file=sys.stderr)
        sys.exit(2)


def setup_logging() -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level if level in logging.getLevelNamesMapping() else "INFO",
                        format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)


def stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        logging.getLogger("flow_engine").info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def enqueue_lane(lane: int) -> None:
    from flow_engine.tasks import process_lane

    process_lane.apply_async((lane,))


def run_bridge() -> None:
    settings = load_settings_or_exit()
    setup_logging()
    from bridge.loop import Bridge

    stop = stop_on_signals()
    logging.getLogger("flow_engine.bridge").info("bridge %s starting", settings.consumer)
    Bridge(settings, enqueue_lane).run(stop)


def run_scheduler() -> None:
    settings = load_settings_or_exit()
    setup_logging()
    from flow_engine.scheduler import TimerLoop

    stop = stop_on_signals()
    logging.getLogger("flow_engine.scheduler").info("timer loop starting")
    TimerLoop(settings, enqueue_lane).run(stop)
