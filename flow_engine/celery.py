"""The Celery app: `celery -A flow_engine worker` finds `flow_engine.celery.app`."""

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

app = Celery("flow_engine")
app.config_from_object("celeryconfig")


@worker_process_init.connect
def _fresh_connections_after_fork(**_: object) -> None:
    """Each prefork child opens its own Redis and database connections."""
    from flow_engine import runtime

    runtime.reset()


@worker_process_shutdown.connect
def _close_connections(**_: object) -> None:
    from flow_engine import runtime

    if runtime._runtime is not None:
        runtime._runtime.close()
