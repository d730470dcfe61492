"""The database side of the engine: flows (cached), contacts, and applying outcomes idempotently."""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2.extensions import AsIs, adapt
from sqlalchemy import Engine, and_, bindparam, func, insert, literal_column, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from flow_engine.adapters.db import ContactRow, FlowRow, FlowRunRow
from flow_engine.adapters.schema import stamp
from flow_engine.core.frozen import quick_init
from flow_engine.core.graph import Flow, parse_flow
from flow_engine.core.ids import derive
from flow_engine.core.outcome import TAGS, AttributeWrite, Contact, Outcome, TagWrite, with_tag
from flow_engine.core.trail import MAX_ENTRIES, numbered

_MISSING = object()


@dataclass
class StoredContact:
    id: str | None  # None: not in the database yet
    contact: Contact


class FlowCache:
    """Parsed flows per process: the active flow of an org and flows by id, each kept `ttl_s`."""

    def __init__(self, engine: Engine, ttl_s: float) -> None:
        self.engine, self.ttl_s = engine, ttl_s
        self._active: dict[str, tuple[float, Flow | None]] = {}
        self._by_id: dict[str, tuple[float, Flow | None]] = {}

    def active(self, org_id: str) -> Flow | None:
        if not org_id:
            return None
        cached = self._active.get(org_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        query = (
            select(FlowRow.id, FlowRow.version, FlowRow.graph, FlowRow.name)
            .where(FlowRow.org_id == org_id, FlowRow.status == "active")
            .order_by(FlowRow.version.desc().nulls_last())  # the platform's column is nullable
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        flow = None if row is None else _parse(row.id, row.version, row.graph)
        self._active[org_id] = (time.monotonic() + self.ttl_s, flow)
        return flow

    def by_id(self, flow_id: str) -> Flow | None:
        """The flow row a paused run started on; None once it is deleted."""
        cached = self._by_id.get(flow_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        with self.engine.connect() as conn:
            row = conn.execute(select(FlowRow.id, FlowRow.version, FlowRow.graph).where(FlowRow.id == flow_id)).first()
        flow = None if row is None else _parse(row.id, row.version, row.graph)
        self._by_id[flow_id] = (time.monotonic() + self.ttl_s, flow)
        return flow


def _parse(flow_id: str, version: int | None, graph: Any) -> Flow:
    version = version or 0
    if isinstance(graph, str | bytes):  # a platform may store the graph as text
        try:
            graph = json.loads(graph)
        except ValueError as exc:
            return Flow((), {}, (f"graph: not valid JSON: {exc}",), flow_id, version)
    return parse_flow(graph, flow_id=flow_id, version=version)


def contact_id(org_id: str, contact: str) -> str:
    """The id of a contact the engine creates: stable, so concurrent creations collide harmlessly."""
    return derive("contact", org_id, contact)


# The statements of every batch are built once: SQLAlchemy keys its compiled form by the statement's
# cache key, which it computes once per statement object (a new object per batch cost both each time).
_CONTACTS_BY_PHONE = select(ContactRow.id, ContactRow.wa_id, ContactRow.phone, ContactRow.name,
                            ContactRow.attributes).where(
    ContactRow.org_id == bindparam("org_id"),
    or_(ContactRow.wa_id.in_(bindparam("wanted", expanding=True)),
        ContactRow.phone.in_(bindparam("wanted", expanding=True))),
)


def load_contacts(engine: Engine, org_id: str, phones: Iterable[str]) -> dict[str, StoredContact]:
    """Contacts of one org by wa_id or phone; unknown ones get an empty snapshot."""
    wanted = sorted(set(phones))
    found: dict[str, StoredContact] = {}
    with engine.connect() as conn:
        for row in conn.execute(_CONTACTS_BY_PHONE, {"org_id": org_id, "wanted": wanted}):
            key = row.wa_id if row.wa_id in wanted else row.phone
            attributes = row.attributes if isinstance(row.attributes, dict) else {}
            found.setdefault(key, StoredContact(row.id, Contact(key, row.name or "", attributes)))
    return {phone: found.get(phone) or StoredContact(None, Contact(phone)) for phone in wanted}


@quick_init
@dataclass(frozen=True)
class Applied:
    """One processed event for the database: its outcome and the contact it belongs to."""

    org_id: str
    channel_id: str
    contact: str
    outcome: Outcome


def apply_outcomes(engine: Engine, applied: Sequence[Applied], contacts: dict[tuple[str, str], StoredContact]) -> None:
    """Write runs and contact changes of a batch in one transaction. Idempotent: runs are upserted by
    id, attributes merged key by key (never replacing the object, so other keys written concurrently
    by other services survive), contacts created with a stable id."""
    runs: dict[str, dict[str, Any]] = {}
    patches: dict[tuple[str, str], dict[str, Any]] = {}
    names: dict[tuple[str, str], str] = {}
    tag_changes: dict[tuple[str, str], dict[str, bool]] = {}  # per contact: tag -> present, merged in SQL
    run_created = _adapted_once(engine, stamp(engine, "flow_runs", "created_at"))
    run_updated = _adapted_once(engine, stamp(engine, "flow_runs", "updated_at"))
    created_at = _adapted_once(engine, stamp(engine, "contacts", "created_at"))
    now = _adapted_once(engine, stamp(engine, "contacts", "updated_at"))
    for item in applied:
        outcome, who = item.outcome, (item.org_id, item.contact)
        for run in (outcome.ended, outcome.run):  # ended: the run an interrupt word ended
            if run is None:
                continue
            trail = numbered(run.trail_from, run.trail)
            earlier = runs.get(run.id)
            if earlier is not None:  # the run's entries of earlier events in this batch come first
                trail = _last_entries({**earlier["trail"], **trail}, run.trail_count)
            runs[run.id] = {  # a later event of the same run in this batch wins
                "id": run.id, "org_id": item.org_id, "flow_id": run.flow_id, "flow_version": run.flow_version,
                "contact": item.contact, "channel_id": item.channel_id, "status": run.status,
                "last_step": run.last_step, "context": dict(run.context), "created_at": run_created,
                "updated_at": run_updated, "trail": trail, "trail_count": run.trail_count,
            }
        for effect in outcome.effects:  # in order: a later write wins, tag changes apply on top of writes
            if isinstance(effect, AttributeWrite):
                patches.setdefault(who, {})[effect.key] = effect.value
                if effect.key == TAGS:
                    tag_changes.pop(who, None)  # the whole list is written: later changes apply to it
            elif isinstance(effect, TagWrite):
                if TAGS in patches.get(who, {}):
                    patches[who][TAGS] = with_tag(patches[who], effect.tag, effect.present)
                else:
                    tag_changes.setdefault(who, {})[effect.tag] = effect.present
        if outcome.contact_name:
            names[who] = outcome.contact_name
    if not (runs or patches or names or tag_changes):
        return
    with engine.begin() as conn:
        dialect = engine.dialect.name
        if runs:
            conn.execute(_run_upsert(dialect), list(runs.values())).all()
        touched = sorted(set(patches) | set(names) | set(tag_changes))
        created = [who for who in touched if contacts[who].id is None]
        for who in created:
            contacts[who].id = contact_id(*who)
        if created:
            conn.execute(
                _contact_insert(dialect),
                [{"id": contacts[who].id, "org_id": who[0], "wa_id": who[1], "phone": who[1], "name": names.get(who),
                  "attributes": {}, "created_at": created_at, "updated_at": now} for who in created],
            )
        if dialect == "postgresql" and touched:
            # One statement for the whole batch (sent in pages by psycopg2's execute_batch).
            conn.execute(_PG_MERGE, [{"id": contacts[who].id, "patch": json.dumps(patches.get(who, {})),
                                      "name": names.get(who), "now": now} for who in touched])
            if tag_changes:
                conn.execute(_PG_TAGS, [{"id": contacts[who].id, **_tag_args(changes)}
                                        for who, changes in sorted(tag_changes.items())])
            return
        for who in touched:
            values: dict[str, Any] = {"updated_at": now}
            if who in names:
                values["name"] = names[who]
            patch = patches.get(who, {})
            by_path = {key: value for key, value in patch.items() if '"' not in key}
            if by_path:
                values["attributes"] = _sqlite_merged(by_path)
            conn.execute(update(ContactRow).where(ContactRow.id == contacts[who].id).values(**values))
            if len(by_path) < len(patch):
                rest = {key: value for key, value in patch.items() if key not in by_path}
                _sqlite_merge_unaddressable(conn, str(contacts[who].id), rest)
            if who in tag_changes:
                _sqlite_change_tags(conn, str(contacts[who].id), tag_changes[who])


@functools.cache
def _run_upsert(dialect: str) -> Any:
    """The upsert of a batch's flow_runs rows (built once per dialect, see _CONTACTS_BY_PHONE)."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(FlowRunRow)
    # RETURNING lets SQLAlchemy send the rows as one multi-row statement ("insertmanyvalues")
    # instead of one statement per row; the ids within a batch are distinct.
    return insert.on_conflict_do_update(
        index_elements=[FlowRunRow.id],
        set_={
            "status": insert.excluded.status,
            "last_step": insert.excluded.last_step,
            "context": insert.excluded.context,
            "updated_at": insert.excluded.updated_at,
            "trail": literal_column(_TRAIL_MERGE[dialect == "postgresql"]),
            "trail_count": literal_column(_TRAIL_COUNT[dialect == "postgresql"]),
        },
        # a run id is derived from its event; whatever an entry claims, it never
        # changes another org's row
        where=FlowRunRow.org_id == insert.excluded.org_id,
    ).returning(FlowRunRow.id)


@functools.cache
def _contact_insert(dialect: str) -> Any:
    """The insert of a batch's new contacts (built once per dialect, see _CONTACTS_BY_PHONE)."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(ContactRow)
    return insert.on_conflict_do_nothing(index_elements=[ContactRow.id])


def _adapted_once(engine: Engine, value: datetime) -> Any:
    """A batch's timestamp as the parameter of its many rows. psycopg2 turns a datetime into SQL text
    anew for every row that holds it (isoformat and the zone: about 13,000 instructions, two per run
    row, a quarter of the worker's database work); adapted once here, each row copies the same text
    (`'2026-12-03T13:44:40.370676+00:00'::timestamptz`, what psycopg2 would send). Other drivers: as is."""
    if engine.dialect.driver != "psycopg2":
        return value
    return AsIs(adapt(value).getquoted().decode())


def _tag_args(changes: dict[str, bool]) -> dict[str, str]:
    return {"add": json.dumps(sorted(t for t, present in changes.items() if present)),
            "remove": json.dumps(sorted(t for t, present in changes.items() if not present))}


# add_tag / remove_tag (SPEC §5.3): the contact's current `tags` as the database holds it, plus the tags
# added, minus the removed ones, sorted by code point (COLLATE "C", as Python sorts) without duplicates,
# computed in the UPDATE: a tag another service adds meanwhile is kept, and so is every other key.
_PG_TAGS = text(
    "UPDATE contacts SET attributes = jsonb_set(COALESCE(attributes, '{}'::jsonb), '{tags}', ("
    " SELECT COALESCE(jsonb_agg(tag ORDER BY tag COLLATE \"C\"), '[]'::jsonb) FROM ("
    "  SELECT DISTINCT tag FROM ("
    "   SELECT CASE WHEN jsonb_typeof(item) = 'string' THEN item #>> '{}' ELSE item::text END AS tag"
    "   FROM jsonb_array_elements(CASE WHEN jsonb_typeof(attributes -> 'tags') = 'array'"
    "                                  THEN attributes -> 'tags' ELSE '[]'::jsonb END) AS item"
    "   UNION ALL SELECT jsonb_array_elements_text(CAST(:add AS jsonb))) AS every"
    "  WHERE tag NOT IN (SELECT jsonb_array_elements_text(CAST(:remove AS jsonb)))) AS kept))"
    " WHERE id = :id"
)


def _sqlite_change_tags(conn: Any, row_id: str, changes: dict[str, bool]) -> None:
    """The same merge on SQLite: read, change, write back, safe because the caller's transaction has
    already written this row and so holds SQLite's write lock until it commits (as below)."""
    current = conn.execute(select(ContactRow.attributes).where(ContactRow.id == row_id)).scalar()
    attributes = current if isinstance(current, dict) else {}
    for tag, present in changes.items():
        attributes = {**attributes, TAGS: with_tag(attributes, tag, present)}
    conn.execute(update(ContactRow).where(ContactRow.id == row_id).values(attributes=attributes))


def _last_entries(trail: dict[str, Any], count: int) -> dict[str, Any]:
    if len(trail) <= MAX_ENTRIES:
        return trail
    return {key: value for key, value in trail.items() if int(key) >= count - MAX_ENTRIES}


# A run's trail grows in the same upsert that writes its row (no extra statement): the event's entries
# are merged by number into the stored object, so writing an event again (a replay after a crash, or a
# batch re-run one event at a time) changes nothing; an event older than what the row holds is not
# merged at all. Past MAX_ENTRIES the oldest entries are dropped (trail_count keeps counting).
def _trail_merge(merged: str, each: str, aggregate: str, as_int: str) -> str:
    return (f"CASE WHEN excluded.trail_count > COALESCE(flow_runs.trail_count, 0) THEN "
            f"CASE WHEN excluded.trail_count > {MAX_ENTRIES} THEN (SELECT {aggregate} FROM {each}({merged}) AS e "
            f"WHERE {as_int} >= excluded.trail_count - {MAX_ENTRIES}) ELSE {merged} END "
            "ELSE flow_runs.trail END")


_TRAIL_MERGE = {  # by "is PostgreSQL"
    True: _trail_merge("COALESCE(flow_runs.trail, '{}'::jsonb) || excluded.trail", "jsonb_each",
                       "COALESCE(jsonb_object_agg(e.key, e.value), '{}'::jsonb)", "CAST(e.key AS integer)"),
    False: _trail_merge("json_patch(COALESCE(flow_runs.trail, '{}'), excluded.trail)", "json_each",
                        "json_group_object(e.key, e.value)", "CAST(e.key AS INTEGER)"),
}
_TRAIL_COUNT = {
    True: "GREATEST(COALESCE(flow_runs.trail_count, 0), excluded.trail_count)",
    False: "MAX(COALESCE(flow_runs.trail_count, 0), excluded.trail_count)",
}


# Sets the patch's keys (|| keeps every other key: a concurrent write of another key survives).
_PG_MERGE = text(
    "UPDATE contacts SET attributes = COALESCE(attributes, '{}'::jsonb) || CAST(:patch AS jsonb), "
    "name = COALESCE(:name, name), updated_at = :now WHERE id = :id"
)


def _sqlite_merged(patch: dict[str, Any]) -> Any:
    """SQLite's `attributes` with the keys of `patch` set, computed by the database in the UPDATE.
    Keys are quoted in the JSON path; a key holding `"` cannot be (SQLite's paths have no escape)."""
    args: list[Any] = [func.coalesce(ContactRow.attributes, "{}")]
    for key, value in patch.items():
        args += ['$."' + key + '"', func.json(json.dumps(value))]
    return func.json_set(*args)


def _sqlite_merge_unaddressable(conn: Any, row_id: str, patch: dict[str, Any]) -> None:
    """Keys no SQLite JSON path can name: read, merge, write back. Safe against a concurrent write of
    another key because the caller's transaction has already written this row, so it holds SQLite's
    write lock until it commits: nobody writes between this read and this write."""
    current = conn.execute(select(ContactRow.attributes).where(ContactRow.id == row_id)).scalar()
    merged = {**(current if isinstance(current, dict) else {}), **patch}
    conn.execute(update(ContactRow).where(ContactRow.id == row_id).values(attributes=merged))


def store_flow(
    engine: Engine, org_id: str, graph: Any, *, name: str, activate: bool, created_by: str, if_changed: bool = False
) -> tuple[str, int, bool]:
    """Insert a new version of the org's flow `name`; with `activate` it becomes the org's active flow.
    With `if_changed`, an identical active version is kept instead. Returns (id, version, stored)."""
    with engine.begin() as conn:
        if if_changed:
            current = conn.execute(
                select(FlowRow.id, FlowRow.version, FlowRow.graph, FlowRow.status)
                .where(FlowRow.org_id == org_id, FlowRow.name == name)
                .order_by(FlowRow.version.desc())
                .limit(1)
            ).first()
            if current is not None and current.graph == graph and (current.status == "active" or not activate):
                return current.id, current.version, False
        latest = conn.execute(
            select(func.max(FlowRow.version)).where(FlowRow.org_id == org_id, FlowRow.name == name)
        ).scalar()
        version = int(latest or 0) + 1
        flow_id = uuid.uuid4().hex
        if activate:
            conn.execute(
                update(FlowRow).where(and_(FlowRow.org_id == org_id, FlowRow.status == "active")).values(
                    status="inactive"
                )
            )
        conn.execute(
            insert(FlowRow).values(
                id=flow_id, org_id=org_id, name=name, version=version, graph=graph,
                status="active" if activate else "draft", created_by=created_by,
                created_at=stamp(engine, "flows", "created_at"),
            )
        )
    return flow_id, version, True
