"""job labels: on the job as shown, and one row each to find jobs by

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 23:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("jobs", sa.Column("labels", sa.JSON(), nullable=True))
    op.create_table(
        "job_labels",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "key"),
    )
    op.create_index(
        "ix_job_labels_key_value_job_id", "job_labels", ["key", "value", "job_id"]
    )


def downgrade():
    op.drop_index("ix_job_labels_key_value_job_id", table_name="job_labels")
    op.drop_table("job_labels")
    op.drop_column("jobs", "labels")
