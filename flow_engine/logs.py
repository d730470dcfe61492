"""Logs: one JSON object per line on stderr, level from LOG_LEVEL. Records carry org_id, run_id,
trace_id and event_id when the caller knows them (`extra=`); no message text or phone at INFO."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

CONTEXT_FIELDS = ("component", "org_id", "run_id", "trace_id", "event_id", "lane")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for field in CONTEXT_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def level() -> int:
    name = os.environ.get("LOG_LEVEL", "INFO").upper()
    return logging.getLevelNamesMapping().get(name, logging.INFO)


def setup(process: str) -> None:
    """Route every log record of this process to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_Component(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level())


class _Component(logging.Filter):
    """Names the engine process (bridge, scheduler, worker) on each record."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.setdefault("component", self.component)
        return True
