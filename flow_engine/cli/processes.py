"""Commands that run the engine's long-running processes: the bridge, the timer loop, and the whole
dev stack in the foreground (`up`)."""

from __future__ import annotations

import sys

import click

from flow_engine.cli.common import require_redis, settings


@click.command()
def bridge() -> None:
    """Run the bridge: nf:incoming (consumer group) -> lanes -> Celery workers."""
    from flow_engine.processes import run_bridge

    run_bridge()


@click.command()
def scheduler() -> None:
    """Run the timer loop: due delays and reply timeouts back into nf:incoming."""
    from flow_engine.processes import run_scheduler

    run_scheduler()


@click.command()
@click.option("--concurrency", "-c", default=2, show_default=True, help="worker processes")
@click.option("--flower/--no-flower", default=True, show_default=True, help="start Flower")
@click.option("--flower-port", default=5555, show_default=True)
@click.option("--events/--no-events", default=True, show_default=True,
              help="worker task events (Flower's live task list; costs throughput)")
def up(concurrency: int, flower: bool, flower_port: int, events: bool) -> None:
    """Run bridge, timer loop, a worker and Flower in the foreground; Ctrl-C stops them all."""
    from flow_engine.supervisor import up as run_up

    require_redis(settings().redis_url)
    sys.exit(run_up(concurrency, flower, flower_port, events))


COMMANDS = (bridge, scheduler, up)
