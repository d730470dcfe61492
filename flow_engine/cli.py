"""flow-engine: the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from flow_engine.core.graph import Flow, parse_flow
from flow_engine.core.outcome import AttributeWrite, Contact, OutboxMessage, WebhookEvent
from flow_engine.core.simulator import Happening, Simulator, effect_lines


def load_graph(path: str) -> Any:
    """A flow file's JSON, or a one-line error naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise click.ClickException(f"{path}: not valid JSON: {exc}") from None


@click.group()
def main() -> None:
    """Flow Engine: runs WhatsApp chat-automation flows on Celery and Redis."""


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Check a flow graph; print every problem with its location (exit 1), or `ok`."""
    problems = parse_flow(load_graph(file)).problems
    if problems:
        for problem in problems:
            click.echo(problem)
        sys.exit(1)
    click.echo("ok")


_IGNORED = {
    "no-match": "swallowed: the reply does not match the pattern",
    "run-busy": "swallowed: the run is in a delay",
    "stale-timer": "timer no longer current",
}


def _transcript(happening: Happening, who: str) -> list[str]:
    """The effects of one event as a readable chat transcript."""
    stamp = f"[{happening.at_ms / 1000:7.3f}s]"
    pad = " " * len(stamp)
    event, outcome = happening.event, happening.outcome
    lines = [f"{stamp} {who} > {event.text}" if hasattr(event, "text") else f"{stamp} ⏰ {event.reason} is due"]
    for effect in outcome.effects:
        if isinstance(effect, OutboxMessage):
            shown = effect.content if effect.type == "text" else json.dumps(effect.content, ensure_ascii=False)
            lines.append(f"{pad} bot > {shown}" if effect.type == "text" else f"{pad} bot > [{effect.type}] {shown}")
        elif isinstance(effect, WebhookEvent):
            lines.append(f"{pad} → webhook {json.dumps(effect.body['data'], ensure_ascii=False)}")
        elif isinstance(effect, AttributeWrite):
            lines.append(f"{pad} ✎ {effect.key} = {json.dumps(effect.value, ensure_ascii=False)}")
    wait = outcome.wait_after
    if outcome.wait_changed and wait is not None:
        due = "" if wait.due_ms is None else f" until {wait.due_ms / 1000:.3f}s"
        lines.append(f"{pad} … waiting for {'a reply' if wait.kind == 'reply' else 'the delay'}{due}")
    if outcome.ignored:
        lines.append(f"{pad} ({_IGNORED.get(outcome.ignored, outcome.ignored)})")
    if outcome.run is not None and outcome.run.status != "running":
        error = outcome.run.context.get("error")
        lines.append(f"{pad} ■ run {outcome.run.status}" + (f": {error}" if error else ""))
    return lines


def _attribute(value: str) -> tuple[str, Any]:
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--attr")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


@main.command()
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
    flow: Flow = parse_flow(load_graph(flow_file), flow_id=Path(flow_file).stem, version=1)
    if flow.problems:
        raise click.ClickException(f"{flow_file} is not a valid flow:\n" + "\n".join(flow.problems))
    attributes = dict(_attribute(a) for a in attrs)
    sim = Simulator(flow, org_id=org, channel_id=channel, contact=Contact(phone, name, attributes))
    for step in steps:
        verb, _, arg = step.partition(":")
        if verb == "say":
            happenings = sim.say(arg)
        elif verb == "wait":
            try:
                seconds = float(arg)
            except ValueError:
                raise click.BadParameter(f"{step!r}: wait needs seconds, e.g. wait:2.5", param_hint="STEP") from None
            if seconds < 0:
                raise click.BadParameter(f"{step!r}: seconds must not be negative", param_hint="STEP")
            happenings = sim.advance(seconds)
        else:
            raise click.BadParameter(f"{step!r} is neither say:TEXT nor wait:SECONDS", param_hint="STEP")
        for happening in happenings:
            if as_json:
                for effect in effect_lines(happening):
                    click.echo(json.dumps(effect, ensure_ascii=False))
            else:
                for line in _transcript(happening, name or phone):
                    click.echo(line)
