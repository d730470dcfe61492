"""Reading runs back: `flow-engine runs list|show`, and the aggregates behind `stats` and
`graph --stats`, summed by the database (PostgreSQL: jsonb_each; SQLite: json_each)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, select, text

from flow_engine.adapters import schema
from flow_engine.adapters.db import FlowRow, FlowRunRow
from flow_engine.core.stats import FlowStats, build
from flow_engine.core.trail import decode

LIST_COLUMNS = ("id", "org_id", "flow_id", "flow_version", "contact", "channel_id", "status", "last_step",
                "created_at", "updated_at", "trail_count")


@dataclass(frozen=True)
class RunFilter:
    """Which runs: every field that is set must hold."""

    org_id: str | None = None
    flow_ids: tuple[str, ...] | None = None  # None: any flow
    contact: str | None = None
    status: str | None = None
    since: datetime | None = None  # created at or after (aware)


def utc(value: Any) -> datetime | None:
    """A stored timestamp as aware UTC (the platform's columns are naive UTC)."""
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _where(engine: Engine, chosen: RunFilter) -> tuple[str, dict[str, Any], list[Any]]:
    """The WHERE clause on `flow_runs r`, its parameters and its expanding bind parameters."""
    parts = ["TRUE" if engine.dialect.name == "postgresql" else "1 = 1"]
    params: dict[str, Any] = {}
    expanding: list[Any] = []
    if chosen.org_id is not None:
        parts.append("r.org_id = :org_id")
        params["org_id"] = chosen.org_id
    if chosen.flow_ids is not None:
        parts.append("r.flow_id IN :flow_ids")
        params["flow_ids"] = list(chosen.flow_ids)
        expanding.append(bindparam("flow_ids", expanding=True))
    if chosen.contact is not None:
        parts.append("r.contact = :contact")
        params["contact"] = chosen.contact
    if chosen.status is not None:
        parts.append("r.status = :status")
        params["status"] = chosen.status
    if chosen.since is not None:
        parts.append("r.created_at >= :since")
        naive = ("flow_runs", "created_at") in schema.inspect_schema(engine, {"flow_runs": ("created_at",)}).naive
        since = chosen.since.astimezone(UTC)
        params["since"] = since.replace(tzinfo=None) if naive else since
    return " AND ".join(parts), params, expanding


def flow_ids(engine: Engine, org_id: str | None, flow: str) -> tuple[str, ...]:
    """The flows `flow` names: a flow id, or every version of the org's flow of that name. An id
    that is no longer stored is kept (its runs may outlive it)."""
    query = select(FlowRow.id).where((FlowRow.id == flow) | (FlowRow.name == flow))
    if org_id is not None:
        query = query.where(FlowRow.org_id == org_id)
    with engine.connect() as conn:
        found = [row[0] for row in conn.execute(query)]
    return tuple(dict.fromkeys([*found, flow]))


def flow_ids_of_graph(engine: Engine, org_id: str, graph: Any) -> tuple[str, ...]:
    """The org's stored flows (any version, any name) whose graph is `graph`."""
    with engine.connect() as conn:
        rows = conn.execute(select(FlowRow.id, FlowRow.graph).where(FlowRow.org_id == org_id)).all()
    return tuple(row.id for row in rows if row.graph == graph)


def stored_graph(engine: Engine, org_id: str, flow: str) -> Any | None:
    """The graph of the org's flow `flow`: by id, else by name (its active version, else its latest)."""
    query = (select(FlowRow.graph).where(FlowRow.org_id == org_id, (FlowRow.id == flow) | (FlowRow.name == flow))
             .order_by((FlowRow.id == flow).desc(), (FlowRow.status == "active").desc(),
                       FlowRow.version.desc().nulls_last()).limit(1))
    with engine.connect() as conn:
        graph = conn.execute(query).scalar()
    if isinstance(graph, str | bytes):
        import json

        graph = json.loads(graph)
    return graph


def list_runs(engine: Engine, chosen: RunFilter, limit: int) -> list[dict[str, Any]]:
    """The newest runs first, without their trail and context."""
    where, params, expanding = _where(engine, chosen)
    r = FlowRunRow.__table__.alias("r")
    query = (select(*(r.c[name] for name in LIST_COLUMNS)).where(text(where).bindparams(*expanding))
             .order_by(r.c.created_at.desc(), r.c.id).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(query, params).mappings().all()
    return [{**row, "created_at": utc(row["created_at"]), "updated_at": utc(row["updated_at"]),
             "trail_count": row["trail_count"] or 0} for row in rows]


def get_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """One run with its context and trail, or None."""
    columns = [getattr(FlowRunRow, name) for name in (*LIST_COLUMNS, "context", "trail")]
    with engine.connect() as conn:
        row = conn.execute(select(*columns).where(FlowRunRow.id == run_id)).mappings().first()
    if row is None:
        return None
    return {**row, "created_at": utc(row["created_at"]), "updated_at": utc(row["updated_at"]),
            "trail_count": row["trail_count"] or 0}


# Each trail entry of the chosen runs, its fields split (core/trail.py: encode), with `first`: 1 on the
# first entry of its location in its run, so summing it counts the runs that reached a location without
# a DISTINCT over every entry. PostgreSQL sums in SQL; SQLite (development) streams them to Python.
_PG_FIELD = "NULLIF(split_part(e.value, chr(31), {0}), '')"
_PG_ENTRIES = (
    "SELECT s, k, via, t, en, count(*), sum(first) FROM (SELECT x.* FROM flow_runs r CROSS JOIN LATERAL ("
    f"SELECT split_part(e.value, chr(31), 1) AS s, {_PG_FIELD.format(3)} AS k, {_PG_FIELD.format(4)} AS via, "
    f"{_PG_FIELD.format(5)} AS t, {_PG_FIELD.format(6)} AS en, "
    "CAST(row_number() OVER (PARTITION BY split_part(e.value, chr(31), 1)) = 1 AS integer) AS first "
    "FROM jsonb_each_text(r.trail) AS e) AS x WHERE {where}) AS y GROUP BY s, k, via, t, en"
)
_SQLITE_ENTRIES = "SELECT r.id, e.value FROM flow_runs r, json_each(r.trail) AS e WHERE {where}"


def stats_queries(engine: Engine, chosen: RunFilter) -> list[tuple[str, dict[str, Any], list[Any]]]:
    """The two statements (text, params, expanding binds): runs by status and last step; trail entries
    by (location, kind, via, to, end) with the runs that reached the location (on SQLite: the entries)."""
    where, params, expanding = _where(engine, chosen)
    statuses = f"SELECT r.status, r.last_step, count(*) FROM flow_runs r WHERE {where} GROUP BY r.status, r.last_step"
    entries = (_PG_ENTRIES if engine.dialect.name == "postgresql" else _SQLITE_ENTRIES).format(where=where)
    return [(sql, params, expanding) for sql in (statuses, entries)]


def flow_stats(engine: Engine, chosen: RunFilter) -> FlowStats:
    """Runs by status and the per-step funnel of the runs `chosen` picks (two queries, one transaction;
    PostgreSQL without JIT, whose compiling costs more than it saves here)."""
    postgresql = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgresql:
            conn.execute(text("SET LOCAL jit = off"))
        (statuses, params, expanding), (entries, _, _) = stats_queries(engine, chosen)
        by_status = [tuple(row) for row in conn.execute(text(statuses).bindparams(*expanding), params)]
        rows = conn.execute(text(entries).bindparams(*expanding), params)
        summed = [tuple(row) for row in rows] if postgresql else _summed(rows)
    return build(by_status, summed)


def _summed(rows: Iterable[Any]) -> list[tuple[Any, ...]]:
    """What the PostgreSQL statement sums, from (run id, stored entry) rows."""
    counts: Counter[tuple[Any, ...]] = Counter()
    firsts: Counter[tuple[Any, ...]] = Counter()
    seen: set[tuple[str, str]] = set()
    for run_id, raw in rows:
        item = decode(raw)
        key = (item.get("s", ""), item.get("k"), item.get("via"), item.get("to"), item.get("end"))
        counts[key] += 1
        if (run_id, key[0]) not in seen:
            seen.add((run_id, key[0]))
            firsts[key] += 1
    return [(*key, count, firsts[key]) for key, count in counts.items()]


def explain(engine: Engine, chosen: RunFilter) -> list[str]:
    """The database's plan of each stats statement (PostgreSQL: EXPLAIN ANALYZE)."""
    prefix = "EXPLAIN ANALYZE " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    lines: list[str] = []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL jit = off"))
        for sql, params, expanding in stats_queries(engine, chosen):
            lines.append(sql)
            lines += ["  " + " ".join(str(c) for c in row) for row in
                      conn.execute(text(prefix + sql).bindparams(*expanding), params)]
    return lines
