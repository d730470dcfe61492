"""Database tables (SPEC §4) and the engine factory. Migrations in flow_engine/migrations mirror these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, Index, Integer, MetaData, String, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flow_engine.core.jsontext import plain

JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData()


class FlowRow(Base):
    __tablename__ = "flows"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(256), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    graph: Mapped[Any] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | active | inactive
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (Index("ix_flows_org_status_version", "org_id", "status", "version"),)


class FlowRunRow(Base):
    __tablename__ = "flow_runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128))
    flow_id: Mapped[str] = mapped_column(String(64))
    flow_version: Mapped[int] = mapped_column(Integer, default=0)
    contact: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # running | completed | failed
    last_step: Mapped[str] = mapped_column(String(256))
    context: Mapped[Any] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The run's trail (core/trail.py): its last 500 entries keyed by number, and how many it recorded.
    trail: Mapped[Any] = mapped_column(JsonType, nullable=True)
    trail_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    __table_args__ = (Index("ix_flow_runs_org_contact", "org_id", "contact"),
                      Index("ix_flow_runs_org_created", "org_id", "created_at"))


class ContactRow(Base):
    __tablename__ = "contacts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(128))
    wa_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    attributes: Mapped[Any] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        Index("ix_contacts_org_phone", "org_id", "phone"),
        Index("ix_contacts_org_wa_id", "org_id", "wa_id"),
    )


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL and a busy timeout so several processes can share the file."""
    # hide_parameters: a statement's parameters (phone numbers, message texts) never reach an error
    # message, so no log line and no DLQ entry carries them from there.
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # No pre-ping (a round trip per batch): a connection lost to a restart fails its batch, which
    # is retried on a fresh one. execute_batch sends the per-contact UPDATEs of a batch in one go.
    # json_serializer: the text json.dumps makes, made for less (core/jsontext.py): two JSON values a run.
    return create_engine(url, pool_size=2, max_overflow=2, pool_recycle=1800, executemany_mode="values_plus_batch",
                         hide_parameters=True, json_serializer=plain)
