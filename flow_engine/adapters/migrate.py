"""`flow-engine db upgrade`: Alembic, configured in code so it works from an install."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
ADDS_WHAT_IS_MISSING = "0001"  # the revision before 0002, which adds the engine's missing columns


def upgrade(database_url: str, revision: str = "head") -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, revision)
    if revision == "head" and _lacks_columns(database_url):
        # A column the engine needs was dropped after 0002 added it: the version table still says
        # head, so run 0002 again (its downgrade changes nothing; it adds only what is missing).
        command.downgrade(config, ADDS_WHAT_IS_MISSING)
        command.upgrade(config, revision)


def _lacks_columns(database_url: str) -> bool:
    from flow_engine.adapters import schema
    from flow_engine.adapters.db import make_engine

    engine = make_engine(database_url)
    try:
        missing = schema.inspect_schema(engine, {**schema.WORKER, **schema.FLOWS}).missing
    finally:
        engine.dispose()
    return any("." in name for name in missing)
