"""flow-engine: the command line. A shell: it may import anything of flow_engine (lazily, inside the
commands, so that `flow-engine validate` does not load Celery or SQLAlchemy).

Commands by audience, each a thin call into a library function:
- authoring.py   validate, simulate, graph, flows load  (flow_engine.flows, the core)
- processes.py   bridge, scheduler, up                  (flow_engine.processes, flow_engine.supervisor)
- operations.py  status, health, dlq, db upgrade, state migrate, waits upgrade  (flow_engine.ops, adapters)
- devtools.py    send, tail                             (flow_engine.devtools)

A FlowEngineError raised by a command is shown as `Error: <its text>`, exit code 1 (common.EngineGroup).
"""

from __future__ import annotations

import click

from flow_engine.cli import authoring, devtools, handoff, operations, processes, runs
from flow_engine.cli.common import EngineGroup


@click.group(cls=EngineGroup)
def main() -> None:
    """Flow Engine: runs WhatsApp chat-automation flows on Celery and Redis."""


# -- registration: every command module's commands. A new module of commands is one more entry here
# (its COMMANDS, or its command, in this loop);
# `flow-engine --help` sorts them.
for command in (*authoring.COMMANDS, *processes.COMMANDS, *operations.COMMANDS, *devtools.COMMANDS, handoff.handoff,
                runs.runs, runs.stats):
    main.add_command(command)
