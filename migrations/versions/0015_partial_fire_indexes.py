"""partial indexes for what a fire leaves empty: jobs without a next run, unreceived messages

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 21:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# (index, table, column): a fire writes NULL there (a one-shot done, a message not yet
# received), and every query that reads the index names a value (a range, an equality,
# IN) or asks IS NOT NULL, so NULL rows need no entry.
PARTIAL = (
    ("ix_jobs_next_run_at", "jobs", "next_run_at"),
    ("ix_queue_messages_receipt", "queue_messages", "receipt"),
)


def upgrade():
    for name, table, column in PARTIAL:
        op.drop_index(name, table_name=table)
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, table, [column], sqlite_where=where, postgresql_where=where)


def downgrade():
    for name, table, column in PARTIAL:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, [column])
