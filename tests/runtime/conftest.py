"""Real Redis and PostgreSQL for the runtime tests, and the engine's processes as subprocesses.

Redis and PostgreSQL must be running (`make test` starts them); a test never mocks them. Each test
module gets its own Redis database number and PostgreSQL database, and each test its own org ids.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import EXAMPLE_FLOWS
from tests.devstack import Stack, flushed_redis, fresh_database

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
