"""dead letters: a job's dead letter target, and runs that carry a dead run's message

Revision ID: 0011
Revises: 0009 (becomes 0010 when merged after it)
Create Date: 2026-12-01 23:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PARTIAL = sa.text("next_attempt_at IS NOT NULL")


def upgrade():
    op.add_column("jobs", sa.Column("dead_letter", sa.JSON(), nullable=True))
    op.add_column("runs", sa.Column("target", sa.JSON(), nullable=True))
    op.add_column("runs", sa.Column("payload", sa.Text(), nullable=True))
    # The unique key gains the dead letter flag: one run per occurrence, and at most one
    # dead letter of it. SQLite cannot drop a constraint: the table is copied (once).
    op.drop_index("ix_runs_next_attempt_at_origin", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("dead_letter", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.drop_constraint("uq_runs_job_scheduled_for", type_="unique")
        batch.create_unique_constraint(
            "uq_runs_job_scheduled_for", ["job_id", "scheduled_for", "dead_letter"]
        )
    _partial_index()


def downgrade():
    op.execute("DELETE FROM runs WHERE dead_letter")
    op.drop_index("ix_runs_next_attempt_at_origin", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("uq_runs_job_scheduled_for", type_="unique")
        batch.create_unique_constraint("uq_runs_job_scheduled_for", ["job_id", "scheduled_for"])
        batch.drop_column("dead_letter")
    _partial_index()
    op.drop_column("runs", "payload")
    op.drop_column("runs", "target")
    op.drop_column("jobs", "dead_letter")


def _partial_index():
    """Made again after the copy: a copied table would keep it without its WHERE."""
    op.create_index(
        "ix_runs_next_attempt_at_origin", "runs", ["next_attempt_at", "origin"],
        sqlite_where=PARTIAL, postgresql_where=PARTIAL,
    )
