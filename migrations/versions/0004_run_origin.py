"""run origin: where a run's delivery goes, so a claim can pass over full origins

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 15:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN (no table copy on SQLite): runs is the largest table. Old runs keep
    # NULL, which a claim treats as "origin not known yet".
    op.add_column("runs", sa.Column("origin", sa.String(length=300), nullable=True))
    # Partial: only runs that still need an attempt are in it (a claim's range implies it).
    op.create_index(
        "ix_runs_next_attempt_at_origin", "runs", ["next_attempt_at", "origin"],
        sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
    )
    op.drop_index("ix_runs_next_attempt_at", table_name="runs")


def downgrade():
    op.create_index("ix_runs_next_attempt_at", "runs", ["next_attempt_at"])
    op.drop_index("ix_runs_next_attempt_at_origin", table_name="runs")
    op.drop_column("runs", "origin")
