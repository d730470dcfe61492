"""Developer tools: send a WhatsApp message into the engine, follow what it answers."""

from __future__ import annotations

import click

from flow_engine.cli.common import redis_client


@click.command()
@click.argument("text")
@click.option("--org", required=True, help="org_id")
@click.option("--channel", default="default", show_default=True, help="channel_id")
@click.option("--from", "phone", required=True, help="the contact's phone (wa_id)")
@click.option("--name", default="", help="the contact's WhatsApp profile name")
def send(text: str, org: str, channel: str, phone: str, name: str) -> None:
    """XADD a WhatsApp-shaped text message from PHONE to nf:incoming."""
    from flow_engine.adapters.keys import INCOMING
    from flow_engine.devtools import send_text

    entry_id = send_text(redis_client(), org, channel, phone, text, name)
    click.echo(f"{INCOMING} {entry_id}: {phone} > {text}")


@click.command()
@click.option("--from-start", is_flag=True, help="print the whole stream first")
@click.option("--count", type=int, default=0, help="stop after COUNT entries (0: follow forever)")
def tail(from_start: bool, count: int) -> None:
    """Follow nf:outbox, one readable line per message."""
    from flow_engine.adapters.keys import OUTBOX
    from flow_engine.devtools import follow, outbox_line

    try:
        for entry_id, fields in follow(redis_client(), OUTBOX, from_start=from_start, count=count):
            click.echo(outbox_line(entry_id, fields))
    except KeyboardInterrupt:
        pass


COMMANDS = (send, tail)
