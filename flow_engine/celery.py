"""The Celery app: `celery -A flow_engine worker` finds `flow_engine.celery.app`.

Importing this module does no I/O: what a worker needs (the metrics directory, logging, the schema
check, connections) is set up by the signal handlers below, when Celery starts a worker.
"""

import os

from celery import Celery
from celery.signals import (
    import_modules,
    setup_logging,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

WORKER_NICENESS = 5
app = Celery("flow_engine")
app.config_from_object("celeryconfig")


@import_modules.connect
def _metrics_directory(**_: object) -> None:
    """With /metrics on, prefork children count into files the main process sums up. Chosen when the
    worker imports its task modules (before any engine metric exists), not when this module is imported."""
    if os.environ.get("FLOW_ENGINE_METRICS_PORT"):
        from flow_engine import metrics_dir

        metrics_dir.use()


@setup_logging.connect
def _json_logs(**_: object) -> None:
    """The engine's JSON log lines instead of Celery's own format."""
    from flow_engine import logs

    logs.setup("worker")


@worker_init.connect
def _serve_metrics(**_: object) -> None:
    from flow_engine import settings

    conf = settings.get()
    if conf.metrics_port is not None:
        from flow_engine import metrics

        metrics.serve_or_exit(conf.metrics_port, conf.metrics_addr)


@worker_init.connect
def _worker_up(**_: object) -> None:
    """`nexia_engine_worker_up`: alerts see a worker (its main process) running."""
    from flow_engine import metrics

    metrics.worker_up.set(1)


@worker_init.connect
def _check_schema(**_: object) -> None:
    """Refuse to start on a database without the engine's tables and columns: one line, exit 2, and
    no traffic touched (a worker that started would retry every event and dead-letter it)."""
    import sys

    from flow_engine import settings
    from flow_engine.adapters.db import make_engine
    from flow_engine.adapters.schema import DatabaseUnreachable, SchemaError, require

    engine = make_engine(settings.get().database_url)
    try:
        require(engine)
    except DatabaseUnreachable as exc:  # an outage: the worker starts and its events are retried
        print(f"flow-engine worker: {exc}; the schema is checked again by each process", file=sys.stderr)
    except SchemaError as exc:
        print(f"flow-engine worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        engine.dispose()


@worker_process_init.connect
def _fresh_connections_after_fork(**_: object) -> None:
    """Each prefork child opens its own Redis and database connections, and yields the CPU to the
    bridge: under a blast the workers would take every core, the bridge would fall behind, and a
    quiet org's message would wait in nf:incoming behind the blast, where no fairness can reach it."""
    from flow_engine import runtime

    runtime.reset()
    os.nice(WORKER_NICENESS)


@worker_process_shutdown.connect
def _close_connections(**_: object) -> None:
    from flow_engine import metrics, runtime

    if runtime._runtime is not None:
        runtime._runtime.close()
    metrics.process_exited(os.getpid())
