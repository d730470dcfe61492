"""Alembic environment: the URL comes from the caller (flow-engine db upgrade) or DATABASE_URL.

The engine keeps its own history in `flow_engine_alembic_version`, so it can live in a platform
database whose own Alembic history is in `alembic_version` (the two never see each other's ids).
"""

from __future__ import annotations

from alembic import context
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from flow_engine.adapters.db import Base, make_engine

VERSION_TABLE = "flow_engine_alembic_version"
LEGACY_VERSION_TABLE = "alembic_version"  # where engines before this one recorded their revision

config = context.config
url = config.get_main_option("sqlalchemy.url")


def adopt_legacy_version(connection: Connection) -> None:
    """A database migrated by an older engine holds the engine's revision in `alembic_version`: move
    it into the engine's own table. A table holding any other id (the platform's) is left alone."""
    found = inspect(connection)
    if found.has_table(VERSION_TABLE) or not found.has_table(LEGACY_VERSION_TABLE):
        return
    versions = [row[0] for row in connection.execute(text(f"SELECT version_num FROM {LEGACY_VERSION_TABLE}"))]
    ours = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    if not versions or not set(versions) <= ours:
        return
    connection.execute(text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
                            f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"))
    for version in versions:
        connection.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:v)"), {"v": version})
    connection.execute(text(f"DROP TABLE {LEGACY_VERSION_TABLE}"))


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(str(url))
    try:
        with engine.connect() as connection:
            with connection.begin():
                adopt_legacy_version(connection)
            context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()  # one-shot command: no connection kept


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
