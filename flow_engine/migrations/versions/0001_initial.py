"""flows, flow_runs, contacts

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def _missing(name: str) -> bool:
    """The engine may join an existing platform database: only create what is not there."""
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("flows"):
        op.create_table(
            "flows",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("org_id", sa.String(128), nullable=False),
            sa.Column("name", sa.String(256), nullable=False, server_default=""),
            sa.Column("version", sa.Integer, nullable=False, server_default="1"),
            sa.Column("graph", JSON, nullable=False),
            sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
            sa.Column("created_by", sa.String(128)),
            sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        )
        op.create_index("ix_flows_org_status_version", "flows", ["org_id", "status", "version"])
    if _missing("flow_runs"):
        op.create_table(
            "flow_runs",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("org_id", sa.String(128), nullable=False),
            sa.Column("flow_id", sa.String(64), nullable=False),
            sa.Column("flow_version", sa.Integer, nullable=False, server_default="0"),
            sa.Column("contact", sa.String(64), nullable=False),
            sa.Column("channel_id", sa.String(128), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("last_step", sa.String(256), nullable=False),
            sa.Column("context", JSON, nullable=False),
            sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
            sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        )
        op.create_index("ix_flow_runs_org_contact", "flow_runs", ["org_id", "contact"])
    if _missing("contacts"):
        op.create_table(
            "contacts",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("org_id", sa.String(128), nullable=False),
            sa.Column("wa_id", sa.String(64)),
            sa.Column("phone", sa.String(64)),
            sa.Column("name", sa.String(256)),
            sa.Column("attributes", JSON, nullable=False),
            sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
            sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        )
        op.create_index("ix_contacts_org_phone", "contacts", ["org_id", "phone"])
        op.create_index("ix_contacts_org_wa_id", "contacts", ["org_id", "wa_id"])


def downgrade() -> None:
    op.drop_table("contacts")
    op.drop_table("flow_runs")
    op.drop_table("flows")
