"""The platform's own database, as its migrations leave it (issue 11): its `alembic_version` at
`0009_set_defaults_created_at`, `organizations`, and `flows`, `contacts`, `flow_runs` with naive
timestamps, nullable columns, no server defaults on `flow_runs`, no indexes but the keys, uuid4 ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.runtime.conftest import PG_ADMIN

FLOW_ENGINE = str(Path(sys.executable).parent / "flow-engine")
PLATFORM_HEAD = "0009_set_defaults_created_at"

PLATFORM_SCHEMA = f"""
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,
  CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
INSERT INTO alembic_version VALUES ('{PLATFORM_HEAD}');
CREATE TABLE organizations (id VARCHAR(36) PRIMARY KEY, name VARCHAR(255), created_at TIMESTAMP DEFAULT now());
CREATE TABLE flows (id VARCHAR(36) PRIMARY KEY, org_id VARCHAR(36) REFERENCES organizations(id),
  name VARCHAR(255), version INTEGER, graph JSONB, status VARCHAR(32), created_by VARCHAR(36));
CREATE TABLE contacts (id VARCHAR(36) PRIMARY KEY, org_id VARCHAR(36) REFERENCES organizations(id),
  wa_id VARCHAR(32), phone VARCHAR(32), name VARCHAR(255), attributes JSONB, tags VARCHAR[], consent BOOLEAN,
  locale VARCHAR(16), timezone VARCHAR(64));
CREATE TABLE flow_runs (id VARCHAR(36) PRIMARY KEY, org_id VARCHAR(36) REFERENCES organizations(id),
  flow_id VARCHAR(36) REFERENCES flows(id), status VARCHAR(32), last_step VARCHAR(255), context JSONB,
  created_at TIMESTAMP, updated_at TIMESTAMP);
"""


@contextmanager
def platform_database(time_zone: str | None = None, *, schema: bool = True) -> Iterator[str]:
    """A new PostgreSQL database holding the platform's schema; with `time_zone`, every session's
    zone (ALTER DATABASE ... SET timezone). Dropped at the end."""
    name = f"fe_platform_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        if time_zone:
            conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO '{time_zone}'"))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    if schema:
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as conn:
            for statement in PLATFORM_SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(text(statement))
        engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_cli(database_url: str, *args: str, redis_url: str = "redis://127.0.0.1:1/0",
            ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    return subprocess.run([FLOW_ENGINE, *args], env=env, capture_output=True, text=True, timeout=120)


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def add_org(url: str) -> str:
    """An organization row, as the platform creates one."""
    org = str(uuid.uuid4())
    sql(url, "INSERT INTO organizations (id, name) VALUES (:id, 'Acme')", id=org)
    return org


def add_flow(url: str, org: str, graph: Any, version: int = 1) -> str:
    """A flow as the platform's API stores one: a uuid4 id, the graph as JSONB, status active."""
    flow_id = str(uuid.uuid4())
    sql(url, "INSERT INTO flows (id, org_id, name, version, graph, status, created_by) "
             "VALUES (:id, :org, :name, :version, CAST(:graph AS jsonb), 'active', :user)",
        id=flow_id, org=org, name=graph.get("name", "flow"), version=version, graph=json.dumps(graph),
        user=str(uuid.uuid4()))
    return flow_id


def add_contact(url: str, org: str, wa_id: str, name: str, attributes: dict[str, Any]) -> str:
    contact_id = str(uuid.uuid4())
    sql(url, "INSERT INTO contacts (id, org_id, wa_id, phone, name, attributes, tags, consent, locale, timezone) "
             "VALUES (:id, :org, :wa, :phone, :name, CAST(:attributes AS jsonb), ARRAY['lead'], true, 'es_MX', "
             "'America/Mexico_City')",
        id=contact_id, org=org, wa=wa_id, phone="+" + wa_id, name=name, attributes=json.dumps(attributes))
    return contact_id


def schema_snapshot(url: str) -> list[Any]:
    """Every column (type, nullability, default) and index of the public schema, and both version tables."""
    columns = sql(url, "SELECT table_name, column_name, data_type, is_nullable, column_default "
                       "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2")
    indexes = sql(url, "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                       "ORDER BY 1, 2")
    versions = sql(url, "SELECT 'platform', version_num FROM alembic_version")
    return [*map(tuple, columns), *map(tuple, indexes), *map(tuple, versions)]
