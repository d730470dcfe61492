"""what the engine needs in a platform database: missing columns and indexes, nothing else

Revision ID: 0002
Revises: 0001

0001 creates the tables only when they are missing, so on the platform's database (tables created
by the platform's own migrations) it creates nothing. This revision adds, to tables that exist,
the columns and indexes the engine uses and they lack. It never drops, renames or retypes a column:
the platform's migrations and services keep working. Added columns are nullable (existing rows have
no value); timestamps get a server default so rows other services insert get one too.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from flow_engine.adapters.migrate import add_missing

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _columns() -> dict[str, list[sa.Column]]:  # type: ignore[type-arg]
    """Every column the engine reads or writes, as 0001 creates it (but nullable)."""
    # SQLite cannot add a column whose default is not a constant.
    now = sa.func.now() if op.get_bind().dialect.name == "postgresql" else None

    def stamp(name: str) -> sa.Column:  # type: ignore[type-arg]
        return sa.Column(name, TIMESTAMP, server_default=now)

    return {
        "flows": [
            sa.Column("org_id", sa.String(128)), sa.Column("name", sa.String(256)), sa.Column("version", sa.Integer),
            sa.Column("graph", JSON), sa.Column("status", sa.String(16)), sa.Column("created_by", sa.String(128)),
            stamp("created_at"),
        ],
        "flow_runs": [
            sa.Column("org_id", sa.String(128)), sa.Column("flow_id", sa.String(64)),
            sa.Column("flow_version", sa.Integer, server_default="0"), sa.Column("contact", sa.String(64)),
            sa.Column("channel_id", sa.String(128)), sa.Column("status", sa.String(16)),
            sa.Column("last_step", sa.String(256)), sa.Column("context", JSON),
            stamp("created_at"), stamp("updated_at"),
        ],
        "contacts": [
            sa.Column("org_id", sa.String(128)), sa.Column("wa_id", sa.String(64)), sa.Column("phone", sa.String(64)),
            sa.Column("name", sa.String(256)), sa.Column("attributes", JSON), stamp("created_at"), stamp("updated_at"),
        ],
    }


INDEXES = (
    ("ix_flows_org_status_version", "flows", ("org_id", "status", "version")),
    ("ix_flow_runs_org_contact", "flow_runs", ("org_id", "contact")),
    ("ix_contacts_org_phone", "contacts", ("org_id", "phone")),
    ("ix_contacts_org_wa_id", "contacts", ("org_id", "wa_id")),
)


def upgrade() -> None:
    add_missing(op, _columns(), INDEXES)


def downgrade() -> None:
    """Nothing: what this revision added may be used by the platform by now, and it cannot tell
    which columns were added by it and which were there before."""
