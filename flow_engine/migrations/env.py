"""Alembic environment: the URL comes from the caller (flow-engine db upgrade) or DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from flow_engine.adapters.db import Base, make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(str(url))
    engine.pool = pool.NullPool(engine.pool._creator)  # one-shot command: no pooling
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
