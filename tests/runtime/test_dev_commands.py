"""flow-engine db upgrade / flows load / send / tail, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from flow_engine.adapters.keys import INCOMING, OUTBOX
from flow_engine.adapters.scripts import connect
from flow_engine.core.inbound import Message, parse_entry
from tests.conftest import EXAMPLE_FLOWS

FLOW_ENGINE = str(Path(sys.executable).parent / "flow-engine")


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    connect(redis_url).flushdb()
    return {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{tmp_path / 'fe.db'}"}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLOW_ENGINE, *args], env=env, capture_output=True, text=True, timeout=60)


def test_db_upgrade_creates_the_tables_on_the_embedded_default(env: dict[str, str]) -> None:
    result = run(env, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"database at {env['DATABASE_URL']} is at revision head\n"
    tables = set(inspect(create_engine(env["DATABASE_URL"])).get_table_names())
    assert {"flows", "flow_runs", "contacts", "flow_engine_alembic_version"} <= tables
    assert run(env, "db", "upgrade").returncode == 0  # idempotent


def test_flows_load_validates_versions_and_activates(env: dict[str, str]) -> None:
    run(env, "db", "upgrade")
    broken = run(env, "flows", "load", str(EXAMPLE_FLOWS / "broken.json"), "--org", "acme")
    assert broken.returncode == 1
    assert broken.stderr.splitlines()[:2] == [f"Error: {EXAMPLE_FLOWS / 'broken.json'} is not a valid flow:",
                                              'nodes[0].map.pricing: path "missing_path" does not exist']
    for _ in range(2):
        loaded = run(env, "flows", "load", str(EXAMPLE_FLOWS / "shop_demo.json"), "--org", "acme", "--activate")
        assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.endswith("('Shop demo' v2) stored for org acme, active\n")
    with create_engine(env["DATABASE_URL"]).connect() as conn:
        rows = conn.execute(text("SELECT name, version, status FROM flows ORDER BY version")).all()
    assert [tuple(r) for r in rows] == [("Shop demo", 1, "inactive"), ("Shop demo", 2, "active")]


def test_send_writes_a_whatsapp_shaped_message_and_tail_prints_the_outbox(env: dict[str, str]) -> None:
    sent = run(env, "send", "--org", "acme", "--channel", "ch9", "--from", "5215550001", "--name", "Ana",
               "hola qué tal")
    assert sent.returncode == 0, sent.stderr
    client: Any = connect(env["REDIS_URL"])
    [(entry_id, fields)] = client.xrange(INCOMING)
    assert sent.stdout == f"nf:incoming {entry_id}: 5215550001 > hola qué tal\n"
    assert (fields["org_id"], fields["channel_id"], fields["source"]) == ("acme", "ch9", "cli")
    [event] = parse_entry(entry_id, fields)
    assert isinstance(event, Message)
    assert (event.org_id, event.channel_id, event.contact, event.text, event.name) == (
        "acme", "ch9", "5215550001", "hola qué tal", "Ana")
    assert event.wa_message_id and event.wa_message_id.startswith("wamid.")
    client.xadd(OUTBOX, {"org_id": "acme", "to": "5215550001", "type": "text", "text": "¡Hola!"})
    client.xadd(OUTBOX, {"org_id": "acme", "to": "5215550001", "type": "media",
                         "media": json.dumps({"kind": "image", "link": "https://e.org/a.png"})})
    tailed = run(env, "tail", "--from-start", "--count", "2")
    assert tailed.returncode == 0, tailed.stderr
    lines = [line.split(" ", 1)[1] for line in tailed.stdout.splitlines()]
    assert lines == ["acme → 5215550001: ¡Hola!",
                     'acme → 5215550001: [media] {"kind": "image", "link": "https://e.org/a.png"}']
