"""What the engine needs of the database, checked when a process starts (the platform's database
may predate the engine's migrations), and whether each timestamp column keeps a time zone."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from flow_engine.errors import DatabaseUnreachable as DatabaseUnreachable
from flow_engine.errors import SchemaError as SchemaError

UPGRADE = "flow-engine db upgrade"

# The columns each part of the engine reads or writes.
FLOWS = {"flows": ("id", "org_id", "name", "version", "graph", "status", "created_by", "created_at")}  # flows load
FLOWS_READ = {"flows": ("id", "org_id", "name", "version", "graph", "status")}
RUNS = {"flow_runs": ("id", "org_id", "flow_id", "flow_version", "contact", "channel_id", "status", "last_step",
                      "context", "created_at", "updated_at", "trail", "trail_count")}
CONTACTS = {"contacts": ("id", "org_id", "wa_id", "phone", "name", "attributes", "created_at", "updated_at")}
WORKER = {**FLOWS_READ, **RUNS, **CONTACTS}


@dataclass(frozen=True)
class Schema:
    missing: tuple[str, ...]  # "flows" (a table) or "flow_runs.flow_version" (a column)
    naive: frozenset[tuple[str, str]]  # (table, column) of timestamps without time zone


def inspect_schema(engine: Engine, needs: Mapping[str, Iterable[str]] = WORKER) -> Schema:
    """What of `needs` is missing, and which timestamp columns are naive. Raises DatabaseUnreachable
    when the database cannot be reached (one line)."""
    try:
        found = inspect(engine)
        tables = set(found.get_table_names())
        missing: list[str] = []
        naive: set[tuple[str, str]] = set()
        for table, columns in needs.items():
            if table not in tables:
                missing.append(table)
                continue
            present = {column["name"]: column["type"] for column in found.get_columns(table)}
            missing += [f"{table}.{name}" for name in columns if name not in present]
            naive |= {(table, name) for name, kind in present.items()
                      if isinstance(kind, DateTime) and not kind.timezone}
    except SQLAlchemyError as exc:
        raise DatabaseUnreachable(f"database at {safe_url(engine)}: cannot read its schema: "
                          f"{one_line(exc)}") from None
    return Schema(tuple(missing), frozenset(naive))


def require(engine: Engine, needs: Mapping[str, Iterable[str]] = WORKER) -> Schema:
    """The schema, or SchemaError naming what is missing and the command that adds it."""
    schema = inspect_schema(engine, needs)
    if schema.missing:
        raise SchemaError(f"database at {safe_url(engine)} lacks {', '.join(schema.missing)}: "
                          f"run `{UPGRADE}` (it adds only what is missing)")
    _known[engine] = schema
    return schema


def one_line(exc: SQLAlchemyError) -> str:
    """The database's own message of `exc`, on one line (without SQLAlchemy's statement dump)."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]


def safe_url(engine: Engine) -> str:
    return make_url(engine.url).render_as_string(hide_password=True)


_known: weakref.WeakKeyDictionary[Engine, Schema] = weakref.WeakKeyDictionary()


def stamp(engine: Engine, table: str, column: str) -> datetime:
    """Now for `table.column`: UTC with its zone for a `timestamptz` column, naive UTC for a
    `timestamp` one. A naive column given an aware value would store it converted to the session's
    time zone (PostgreSQL), hours off from UTC for every reader of the platform's tables."""
    schema = _known.get(engine)
    if schema is None and engine.dialect.name == "postgresql":
        schema = _known[engine] = inspect_schema(engine)
    now = datetime.now(UTC)
    if schema is not None and (table, column) in schema.naive:
        return now.replace(tzinfo=None)
    return now
