"""Real Redis and PostgreSQL for the runtime tests, and the engine's processes as subprocesses.

Redis and PostgreSQL must be running (`make test` starts them); a test never mocks them. Each test
module gets its own Redis database number and PostgreSQL database, and each test its own org ids.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from flow_engine.adapters.db import make_engine
from flow_engine.adapters.migrate import upgrade
from tests.conftest import EXAMPLE_FLOWS
from tests.devstack import Stack, flushed_redis, free_port, fresh_database

REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
PG_ADMIN = os.environ.get("TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
_redis_dbs = itertools.cycle(range(8, 16))


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with flushed_redis(f"{REDIS_BASE}/{next(_redis_dbs)}") as url:
        yield url


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the module, migrated with the project's Alembic migration."""
    with fresh_database(PG_ADMIN) as url:
        yield url


def graph_of(name: str) -> Any:
    return json.loads((EXAMPLE_FLOWS / f"{name}.json").read_text())


def new_org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def stack(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(redis_url, database_url, tmp_path_factory.mktemp("logs"))
    s.start()
    yield s
    s.stop()


FLOW_ENGINE = str(Path(sys.executable).parent / "flow-engine")


def metrics_stack(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A started Stack whose worker serves /metrics on a free port (as `stack.metrics_port`), stopped
    after. A module makes it its stack: `stack = pytest.fixture(scope="module", name="stack")(metrics_stack)`."""
    port = free_port()
    s = Stack(redis_url, database_url, tmp_path_factory.mktemp("logs"), concurrency=2)
    s.metrics_port = port  # type: ignore[attr-defined]
    s["worker0"].env = {**s["worker0"].env, "FLOW_ENGINE_METRICS_PORT": str(port)}
    s.start()
    yield s
    s.stop()


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`flow-engine ARGS` against the stack's Redis and database."""
    return subprocess.run([FLOW_ENGINE, *args], env={**stack["bridge0"].env}, capture_output=True, text=True,
                          timeout=60)


def store_engine(kind: str, database_url: str, tmp_path: Path) -> Engine:
    """An engine on the module's PostgreSQL database ("postgresql") or a new SQLite file ("sqlite"), both
    at the schema head, with no flows, runs or contacts."""
    url = database_url
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'engine.db'}"
        upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in ("flows", "flow_runs", "contacts"):
            conn.execute(text(f"DELETE FROM {table}"))
    return engine
