"""what happens to a job once completed: kept, or deleted

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "jobs",
        sa.Column("on_complete", sa.String(length=8), nullable=False, server_default="keep"),
    )


def downgrade():
    op.drop_column("jobs", "on_complete")
