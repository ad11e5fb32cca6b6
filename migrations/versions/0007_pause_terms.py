"""a pause's terms: a note, and when it ends by itself

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMNs (no table copy on SQLite); the index holds only paused jobs with an end.
    op.add_column("jobs", sa.Column("pause_note", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_jobs_paused_until",
        "jobs",
        ["paused_until"],
        postgresql_where=sa.text("paused_until IS NOT NULL"),
        sqlite_where=sa.text("paused_until IS NOT NULL"),
    )


def downgrade():
    op.drop_index("ix_jobs_paused_until", table_name="jobs")
    op.drop_column("jobs", "paused_until")
    op.drop_column("jobs", "pause_note")
