"""job sequence columns, skipped count, catch-up bound

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("occurrence_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("last_occurrence_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("skipped_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("max_catch_up", sa.Integer(), nullable=True))
    # Until now run_count and last_run_at were the sequence's own (run now was not counted).
    op.execute("UPDATE jobs SET occurrence_count = run_count, last_occurrence_at = last_run_at")


def downgrade():
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("max_catch_up")
        batch.drop_column("skipped_count")
        batch.drop_column("last_occurrence_at")
        batch.drop_column("occurrence_count")
