"""The engine's migrations on the platform's database: they live beside the platform's own history,
add only what the engine lacks, change nothing the second time; before them, every process that
needs the database refuses to start with one line saying what is missing and how to add it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from flow_engine.adapters import schema
from flow_engine.adapters.keys import DLQ
from flow_engine.adapters.migrate import upgrade
from tests.conftest import EXAMPLE_FLOWS
from tests.devstack import Stack
from tests.runtime.platform import (
    PLATFORM_HEAD,
    add_flow,
    add_org,
    platform_database,
    run_cli,
    schema_snapshot,
    sql,
)

ENGINE_HEAD = "0003"


def columns(url: str, table: str) -> dict[str, str]:
    rows = sql(url, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = :t", t=table)
    return {name: kind for name, kind in rows}


def test_db_upgrade_adds_only_the_engines_columns_and_indexes_and_twice_changes_nothing() -> None:
    with platform_database() as url:
        before = {table: columns(url, table) for table in ("flows", "contacts", "flow_runs", "organizations")}
        first = run_cli(url, "db", "upgrade")
        assert first.returncode == 0, first.stderr
        after = {table: columns(url, table) for table in before}
        for table, kinds in before.items():  # nothing of the platform's dropped or retyped
            assert {name: after[table][name] for name in kinds} == kinds
        assert set(after["flow_runs"]) - set(before["flow_runs"]) == {"flow_version", "contact", "channel_id", "trail",
                                                                      "trail_count"}
        assert (after["flow_runs"]["trail"], after["flow_runs"]["trail_count"]) == ("jsonb", "integer")
        assert set(after["flows"]) - set(before["flows"]) == {"created_at"}
        assert set(after["contacts"]) - set(before["contacts"]) == {"created_at", "updated_at"}
        assert after["flow_runs"]["created_at"] == "timestamp without time zone"
        assert after["organizations"] == before["organizations"]
        indexes = {row[0] for row in sql(url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        assert {"ix_flows_org_status_version", "ix_contacts_org_wa_id", "ix_contacts_org_phone",
                "ix_flow_runs_org_contact", "ix_flow_runs_org_created"} <= indexes
        assert sql(url, "SELECT version_num FROM alembic_version") == [(PLATFORM_HEAD,)]
        assert sql(url, "SELECT version_num FROM flow_engine_alembic_version") == [(ENGINE_HEAD,)]

        snapshot = schema_snapshot(url)
        second = run_cli(url, "db", "upgrade")
        assert second.returncode == 0, second.stderr
        assert schema_snapshot(url) == snapshot


def test_an_empty_database_gets_every_table() -> None:
    with platform_database(schema=False) as url:
        assert run_cli(url, "db", "upgrade").returncode == 0
        engine = create_engine(url, poolclass=NullPool)
        assert schema.inspect_schema(engine).missing == ()
        engine.dispose()
        assert sql(url, "SELECT version_num FROM flow_engine_alembic_version") == [(ENGINE_HEAD,)]


def test_a_database_migrated_by_the_previous_code_keeps_upgrading() -> None:
    """Before, the engine recorded its revision in `alembic_version`: it is moved to its own table."""
    with platform_database(schema=False) as url:
        upgrade(url, "0001")
        sql(url, "ALTER TABLE flow_engine_alembic_version RENAME TO alembic_version")
        sql(url, "ALTER TABLE alembic_version RENAME CONSTRAINT flow_engine_alembic_version_pkc TO alembic_version_pkc")
        result = run_cli(url, "db", "upgrade")
        assert result.returncode == 0, result.stderr
        assert sql(url, "SELECT version_num FROM flow_engine_alembic_version") == [(ENGINE_HEAD,)]
        tables = {row[0] for row in sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert "alembic_version" not in tables
        assert run_cli(url, "db", "upgrade").returncode == 0


def test_before_the_upgrade_health_and_flows_load_say_what_is_missing_in_one_line() -> None:
    with platform_database() as url:
        health = run_cli(url, "health", "--check", "db")
        assert health.returncode == 1
        assert health.stderr.count("\n") == 1 and "Traceback" not in health.stderr
        assert "flow_runs.flow_version" in health.stderr and "`flow-engine db upgrade`" in health.stderr
        org = add_org(url)
        load = run_cli(url, "flows", "load", str(EXAMPLE_FLOWS / "shop_demo.json"), "--org", org)
        assert load.returncode == 1
        assert load.stderr.strip() == (f"Error: database at {url} lacks flows.created_at: "
                                       "run `flow-engine db upgrade` (it adds only what is missing)")
        assert run_cli(url, "db", "upgrade").returncode == 0
        assert run_cli(url, "health", "--check", "db").returncode == 0


def test_a_worker_refuses_to_start_before_the_upgrade() -> None:
    with platform_database() as url:
        env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": "redis://127.0.0.1:1/0"}
        worker = subprocess.run([str(Path(sys.executable).parent / "celery"), "-A", "flow_engine", "worker", "-c", "1"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert worker.returncode == 2
        lines = [line for line in worker.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith(f"flow-engine worker: database at {url} lacks flow_runs.flow_version, "
                                    "flow_runs.contact, flow_runs.channel_id, flow_runs.trail, flow_runs.trail_count, "
                                    "contacts.created_at, contacts.updated_at:")
        assert lines[-1].endswith("run `flow-engine db upgrade` (it adds only what is missing)")
        assert "Traceback" not in worker.stderr


def test_a_database_without_tables_is_one_line_for_flows_load() -> None:
    with platform_database(schema=False) as url:
        load = run_cli(url, "flows", "load", str(EXAMPLE_FLOWS / "shop_demo.json"), "--org", "acme")
        assert (load.returncode, load.stderr.count("\n")) == (1, 1)
        assert "lacks flows: run `flow-engine db upgrade`" in load.stderr


def test_flows_load_for_an_org_the_platform_does_not_know_is_one_line() -> None:
    with platform_database() as url:
        assert run_cli(url, "db", "upgrade").returncode == 0
        load = run_cli(url, "flows", "load", str(EXAMPLE_FLOWS / "shop_demo.json"), "--org", "ghost-org")
        assert (load.returncode, load.stderr.count("\n")) == (1, 1), load.stderr
        assert load.stderr.startswith("Error: org 'ghost-org': the database refused the flow (")
        assert "is the org in the platform's organizations table?" in load.stderr
        org = add_org(url)
        ok = run_cli(url, "flows", "load", str(EXAMPLE_FLOWS / "shop_demo.json"), "--org", org, "--activate")
        assert ok.returncode == 0, ok.stderr
        assert sql(url, "SELECT status, version FROM flows WHERE org_id = :org", org=org) == [("active", 1)]


def test_a_bad_graph_file_is_one_line(tmp_path: Path) -> None:
    with platform_database() as url:
        for content, expected in (("{not json", "not valid JSON"), (json.dumps([1, 2]), "a flow is a JSON object")):
            bad = tmp_path / "bad.json"
            bad.write_text(content)
            load = run_cli(url, "flows", "load", str(bad), "--org", "acme")
            assert (load.returncode, load.stderr.count("\n")) == (1, 1), load.stderr
            assert expected in load.stderr and "Traceback" not in load.stderr


def test_a_column_lost_while_running_holds_the_traffic_until_db_upgrade(redis_url: str, tmp_path: Path) -> None:
    with platform_database() as url:
        assert run_cli(url, "db", "upgrade").returncode == 0
        org = add_org(url)
        add_flow(url, org, {"nodes": [], "paths": {"path_default": [
            {"type": "action", "action": "send_text", "text": "eco {{message.text}}"}]}})
        stack = Stack(redis_url, url, tmp_path)
        try:
            stack.start()
            sql(url, "ALTER TABLE flow_runs DROP COLUMN channel_id")  # someone's migration, say
            stack.send(org, "5215550301", "hola")
            stack.wait_until(lambda: "lacks flow_runs.channel_id" in stack["worker0"].log(), 20, "the worker to wait")
            assert stack.stream(DLQ, org) == [] and stack.outbox(org) == []
            upgrade = run_cli(url, "db", "upgrade")
            assert upgrade.returncode == 0, upgrade.stderr
            assert "channel_id" in columns(url, "flow_runs")
            assert [e["text"] for e in stack.wait_outbox(org, 1, timeout_s=45)] == ["eco hola"]
            stack.settled()
            assert stack.stream(DLQ, org) == []
            assert stack.rows("SELECT contact, channel_id FROM flow_runs WHERE org_id = :org", org=org) == [
                ("5215550301", "ch1")]
        finally:
            stack.stop()


def test_the_timer_loop_refuses_to_fire_old_timers_it_cannot_convert(redis_url: str) -> None:
    """Old timers need the orgs' active flows: without the engine's tables, one line and exit 2."""
    client: Any = redis.Redis.from_url(redis_url, decode_responses=True)  # replies are str
    member = json.dumps({"payload": "{}", "org_id": "o", "contact_phone": "1",
                         "engine_resume": json.dumps({"path": "p", "index": 1})})
    client.zadd("nf:incoming:scheduled", {member: 1_764_072_000})
    try:
        with platform_database(schema=False) as url:
            env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url}
            loop = subprocess.run([str(Path(sys.executable).parent / "flow-engine"), "scheduler"], env=env,
                                  capture_output=True, text=True, timeout=60)
        assert loop.returncode == 2
        assert loop.stderr.strip() == (
            f"flow-engine scheduler: the previous engine's timers wait to be converted, and database at {url} "
            "lacks flows: run `flow-engine db upgrade` (it adds only what is missing)")
        assert client.zscore("nf:incoming:scheduled", member) == 1_764_072_000  # not fired
        assert not [f for _id, f in client.xrange("nf:incoming") if "engine_resume" in f]
    finally:
        client.delete("nf:incoming:scheduled")
        client.close()
