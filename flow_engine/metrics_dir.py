"""Prometheus multiprocess mode must be chosen before prometheus_client is imported: this module
does not import it, so process entry points can choose first."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use() -> str:
    """Make this process and the processes it starts count into one multiprocess directory (a fresh
    one unless PROMETHEUS_MULTIPROC_DIR is set), so their counts add up."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="flow-engine-metrics-")
        os.environ[MULTIPROC_ENV] = path
    values: Any = sys.modules.get("prometheus_client.values")
    if values is not None and values.ValueClass is values.MutexValue:
        # Imported already (the `celery` command loads Flower's, which imports it): switch now, before
        # the engine's metrics are created.
        values.ValueClass = values.get_value_class()
    return path
