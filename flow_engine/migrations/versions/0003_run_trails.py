"""run trails: flow_runs.trail and trail_count, and an index for listing an org's runs by time

Revision ID: 0003
Revises: 0002

Like 0002, on the platform's database: the columns are added only when missing, nullable (rows
written before have no trail), and the index only when no index on the same columns exists.
Nothing is dropped, renamed or retyped.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from flow_engine.adapters.migrate import add_missing

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")

COLUMNS: dict[str, list[sa.Column]] = {  # type: ignore[type-arg]
    "flow_runs": [sa.Column("trail", JSON), sa.Column("trail_count", sa.Integer)],
}
INDEXES = (("ix_flow_runs_org_created", "flow_runs", ("org_id", "created_at")),)


def upgrade() -> None:
    add_missing(op, COLUMNS, INDEXES)


def downgrade() -> None:
    """Nothing, as 0002: what this revision added may be used by the platform by now."""
