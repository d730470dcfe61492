"""Logs on stderr, level from LOG_LEVEL. Records carry org_id, run_id, trace_id and event_id when the
caller knows them (`extra=`); no message text or phone at INFO.

The format is LOG_FORMAT: `json` (one JSON object per line: what services and log shippers read) or
`console` (one short human line per record with the same fields). Unset: console when stderr is a
terminal, else JSON; `flow-engine up` runs its children with LOG_FORMAT=console.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

CONTEXT_FIELDS = ("component", "org_id", "run_id", "trace_id", "event_id", "lane")



def fields(record: logging.LogRecord) -> dict[str, Any]:
    """What a log line says, whatever its format: time, level, logger, message, pid, context."""
    line: dict[str, Any] = {
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
    return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = fields(record)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class ConsoleFormatter(logging.Formatter):
    """`12:00:01.234 INFO  bridge: bridge b0 leads  logger=flow_engine.bridge pid=41 org_id=o1`; the
    traceback of an exception follows on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = fields(record)
        at = line.pop("ts")[11:23]  # HH:MM:SS.mmm (UTC, as in the JSON lines)
        level, msg = line.pop("level").upper(), line.pop("msg")
        where = line.pop("component", None) or line["logger"]
        rest = " ".join(f"{name}={value}" for name, value in line.items())
        text = f"{at} {level:<5} {where}: {msg}  {rest}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def formatter(log_format: str | None, stream: Any = None) -> logging.Formatter:
    """The formatter for LOG_FORMAT (None: console on a terminal, JSON otherwise)."""
    if log_format is None:
        isatty = getattr(stream if stream is not None else sys.stderr, "isatty", None)
        log_format = "console" if isatty is not None and isatty() else "json"
    return ConsoleFormatter() if log_format == "console" else JsonFormatter()


def setup(process: str) -> None:
    """Route every log record of this process to stderr, in the format of LOG_FORMAT."""
    from flow_engine import settings

    conf = settings.get()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(conf.log_format, sys.stderr))
    handler.addFilter(_Component(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.getLevelNamesMapping()[conf.log_level])


class _Component(logging.Filter):
    """Names the engine process (bridge, scheduler, worker) on each record."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.setdefault("component", self.component)
        return True
