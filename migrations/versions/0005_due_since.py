"""when a job's occurrences became due to the service, and each run's due time

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 15:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMNs (no table copy on SQLite). NULL: as before, due at the nominal time.
    op.add_column("jobs", sa.Column("due_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("runs", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column("runs", "due_at")
    op.drop_column("jobs", "due_since")
