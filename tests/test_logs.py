"""Log lines: JSON for services, one short human line on a terminal, the same fields in both."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flow_engine.logs import ConsoleFormatter, JsonFormatter, formatter
from flow_engine.settings import SettingsError, load

BIN = Path(sys.executable).parent


def record(**context: str) -> logging.LogRecord:
    rec = logging.LogRecord("flow_engine.bridge", logging.INFO, __file__, 1, "bridge %s leads", ("b0",), None)
    rec.created = 1_764_072_001.234
    rec.process = 41
    rec.__dict__.update(context)
    return rec


def test_a_json_line_and_a_console_line_carry_the_same_fields() -> None:
    rec = record(component="bridge", org_id="o1", trace_id="t9")
    assert json.loads(JsonFormatter().format(rec)) == {
        "ts": "2025-11-25T12:00:01.234+00:00", "level": "info", "logger": "flow_engine.bridge",
        "msg": "bridge b0 leads", "pid": 41, "component": "bridge", "org_id": "o1", "trace_id": "t9"}
    assert ConsoleFormatter().format(rec) == (
        "12:00:01.234 INFO  bridge: bridge b0 leads  logger=flow_engine.bridge pid=41 org_id=o1 trace_id=t9")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_lines_on_a_terminal_json_elsewhere_unless_log_format_says() -> None:
    assert isinstance(formatter(None, Terminal()), ConsoleFormatter)
    assert isinstance(formatter(None, io.StringIO()), JsonFormatter)
    assert isinstance(formatter("json", Terminal()), JsonFormatter)
    assert isinstance(formatter("console", io.StringIO()), ConsoleFormatter)
    assert (load({}).log_format, load({"LOG_FORMAT": "Console"}).log_format) == (None, "console")


def test_a_bad_log_format_names_it() -> None:
    with pytest.raises(SettingsError) as raised:
        load({"LOG_FORMAT": "xml"})
    assert str(raised.value) == "LOG_FORMAT='xml': must be one of json, console"


def test_a_process_with_a_bad_log_format_stops_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "LOG_FORMAT": "xml"}
    result = subprocess.run([str(BIN / "flow-engine"), "scheduler"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "flow-engine: LOG_FORMAT='xml': must be one of json, console\n"
