"""Commands for flow authors: validate, simulate and draw a flow file, and store flows."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from flow_engine.cli.common import settings
from flow_engine.flows import checked_graphs, read_graph, store_graphs, valid_flow


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Check a flow graph; print every problem with its location (exit 1), or `ok`. Parts that are
    ignored at run time (nodes of other types than intent and trigger) are printed as warnings."""
    from flow_engine.core.graph import parse_flow

    flow = parse_flow(read_graph(file))
    for line in [*flow.problems, *(f"warning: {warning}" for warning in flow.warnings)]:
        click.echo(line)
    if flow.problems:
        sys.exit(1)
    click.echo("ok")


def _attribute(value: str) -> tuple[str, Any]:
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--attr")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _start_ms(start: str | None) -> int:
    """`--start`: an ISO 8601 time with its offset (or `Z`), as epoch ms; default now."""
    from datetime import datetime

    if start is None:
        from flow_engine.clock import now_ms

        return now_ms()
    try:
        moment = datetime.fromisoformat(start.replace("Z", "+00:00") if start.endswith("Z") else start)
    except ValueError:
        raise click.BadParameter(f"{start!r} is not an ISO time such as 2026-12-07T10:30:00-06:00",
                                 param_hint="--start") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{start!r} needs its UTC offset, e.g. 2026-12-07T10:30:00-06:00",
                                 param_hint="--start")
    return int(moment.timestamp() * 1000)


def _seconds(step: str, arg: str) -> float:
    try:
        seconds = float(arg)
    except ValueError:
        raise click.BadParameter(f"{step!r}: wait needs seconds, e.g. wait:2.5", param_hint="STEP") from None
    if seconds < 0:
        raise click.BadParameter(f"{step!r}: seconds must not be negative", param_hint="STEP")
    return seconds


@click.command()
@click.argument("flow_file", metavar="FLOW.json", type=click.Path(dir_okay=False))
@click.argument("steps", metavar="STEP...", nargs=-1, required=True)
@click.option("--org", default="sim", show_default=True, help="org_id of the simulated events")
@click.option("--channel", default="sim", show_default=True, help="channel_id of the simulated events")
@click.option("--contact", "phone", default="5215550000000", show_default=True, help="the contact's phone")
@click.option("--name", default="", help="the contact's name")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="a contact attribute (JSON or text)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per effect")
@click.option("--start", "start", default=None, metavar="ISO-TIME",
              help="where the virtual clock starts, e.g. 2026-12-07T10:30:00-06:00 (default: now)")
def simulate(
    flow_file: str, steps: tuple[str, ...], org: str, channel: str, phone: str, name: str,
    attrs: tuple[str, ...], as_json: bool, start: str | None,
) -> None:
    """Play a conversation against a flow: STEP is say:TEXT, wait:SECONDS or release (the agent is done)."""
    from flow_engine.core.control import Control
    from flow_engine.core.outcome import Contact
    from flow_engine.core.simulator import Simulator, effect_lines
    from flow_engine.core.transcript import transcript

    flow = valid_flow(flow_file, flow_id=Path(flow_file).stem, version=1)
    attributes = dict(_attribute(a) for a in attrs)
    conf = settings()  # conversation control as the engine would apply it (FLOW_ENGINE_MAX_STEPS, ...)
    control = Control.of(conf.max_steps, conf.run_expire_min, conf.interrupt_words, conf.max_held,
                         conf.handoff_ttl_min)
    sim = Simulator(flow, org_id=org, channel_id=channel, contact=Contact(phone, name, attributes), control=control,
                    start_ms=_start_ms(start))
    for step in steps:
        verb, _, arg = step.partition(":")
        if verb not in ("say", "wait", "release"):
            raise click.BadParameter(f"{step!r} is neither say:TEXT, wait:SECONDS nor release", param_hint="STEP")
        happenings = sim.say(arg) if verb == "say" else sim.release() if verb == "release" else \
            sim.advance(_seconds(step, arg))
        for happening in happenings:
            lines = ([json.dumps(effect, ensure_ascii=False) for effect in effect_lines(happening)] if as_json
                     else transcript(happening, name or phone))
            for line in lines:
                click.echo(line)


@click.command()
@click.argument("file", metavar="FLOW", type=click.Path(dir_okay=False))
@click.option("--stats", "with_stats", is_flag=True, help="draw the org's run counts on steps and edges")
@click.option("--org", default=None, help="with --stats: whose runs (FLOW may then be a stored flow's id or name)")
@click.option("--since", default=None, help="with --stats: runs started since (30m, 2h, 7d, ISO date/time)")
def graph(file: str, with_stats: bool, org: str | None, since: str | None) -> None:
    """Print a flow (a file) as a Mermaid flowchart (paste it into a ```mermaid block)."""
    from flow_engine.cli.runs import graph_with_stats
    from flow_engine.core.mermaid import to_mermaid

    if with_stats and org is None:
        raise click.UsageError("--stats needs --org")
    raw, counts = read_graph(file) if not with_stats or Path(file).exists() else None, None
    if with_stats:
        raw, counts = graph_with_stats(file, raw, str(org), since)
    click.echo(to_mermaid(valid_flow(file, raw), counts), nl=False)


@click.group()
def flows() -> None:
    """Flows stored in the database."""


@flows.command("load")
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--org", required=True, help="org_id the flow belongs to")
@click.option("--name", default=None, help="flow name (default: the graph's name, else the file name)")
@click.option("--activate", is_flag=True, help="make it the org's active flow")
@click.option("--if-changed", is_flag=True, help="keep the latest version when it is the same graph")
def flows_load(files: tuple[str, ...], org: str, name: str | None, activate: bool, if_changed: bool) -> None:
    """Validate each FILE and store it as a new version of the org's flow."""
    graphs = checked_graphs(files)  # all or nothing: every file is checked before any is stored
    stored = store_graphs(settings().database_url, org, graphs, name=name, activate=activate, if_changed=if_changed)
    with click.progressbar(length=len(graphs), label="storing flows", file=sys.stderr,
                           hidden=len(graphs) < 10) as progress:
        for line in stored:
            progress.update(1)
            click.echo(line)


COMMANDS = (validate, simulate, graph, flows)
