"""`flow-engine db upgrade`: Alembic, configured in code so it works from an install."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


def add_missing(op: Any, columns: Mapping[str, Sequence[Any]],
                indexes: Sequence[tuple[str, str, tuple[str, ...]]]) -> None:
    """For a revision that runs on the platform's own database (0002, 0003): add to the tables that
    exist the `columns` they lack, and the `indexes` (name, table, columns) no index of theirs on the
    same columns already serves. Never drops, renames or retypes anything."""
    import sqlalchemy as sa

    found = sa.inspect(op.get_bind())
    for table, wanted_columns in columns.items():
        if not found.has_table(table):
            continue  # 0001 created every table that was missing; a table dropped since is not ours to add
        present = {column["name"] for column in found.get_columns(table)}
        for column in wanted_columns:
            if column.name not in present:
                op.add_column(table, column)
    for name, table, wanted in indexes:
        if not found.has_table(table):
            continue
        existing = found.get_indexes(table) + found.get_unique_constraints(table)
        if any(index["name"] == name or tuple(index["column_names"]) == wanted for index in existing):
            continue  # the platform's own index on the same columns serves as well
        op.create_index(name, table, list(wanted))
