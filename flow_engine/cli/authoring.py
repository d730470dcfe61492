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
def simulate(
    flow_file: str, steps: tuple[str, ...], org: str, channel: str, phone: str, name: str,
    attrs: tuple[str, ...], as_json: bool,
) -> None:
    """Play a conversation against a flow: STEP is say:TEXT or wait:SECONDS."""
    from flow_engine.core.control import Control
    from flow_engine.core.outcome import Contact
    from flow_engine.core.simulator import Simulator, effect_lines
    from flow_engine.core.transcript import transcript

    flow = valid_flow(flow_file, flow_id=Path(flow_file).stem, version=1)
    attributes = dict(_attribute(a) for a in attrs)
    conf = settings()  # conversation control as the engine would apply it (FLOW_ENGINE_MAX_STEPS, ...)
    control = Control.of(conf.max_steps, conf.run_expire_min, conf.interrupt_words, conf.max_held)
    sim = Simulator(flow, org_id=org, channel_id=channel, contact=Contact(phone, name, attributes), control=control)
    for step in steps:
        verb, _, arg = step.partition(":")
        if verb not in ("say", "wait"):
            raise click.BadParameter(f"{step!r} is neither say:TEXT nor wait:SECONDS", param_hint="STEP")
        for happening in sim.say(arg) if verb == "say" else sim.advance(_seconds(step, arg)):
            lines = ([json.dumps(effect, ensure_ascii=False) for effect in effect_lines(happening)] if as_json
                     else transcript(happening, name or phone))
            for line in lines:
                click.echo(line)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
def graph(file: str) -> None:
    """Print a flow as a Mermaid flowchart (paste it into a ```mermaid block)."""
    from flow_engine.core.mermaid import to_mermaid

    click.echo(to_mermaid(valid_flow(file)), nl=False)


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
