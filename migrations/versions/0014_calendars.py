"""calendars: rrule timings, excluded days, a per-job DST policy

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 01:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COLUMNS = (
    ("rrule", sa.String(500)),
    ("exclude", sa.JSON()),
    ("on_excluded", sa.String(24)),
    ("dst_gap", sa.String(8)),
    ("dst_repeat", sa.String(8)),
)


def upgrade():
    with op.batch_alter_table("jobs") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade():
    with op.batch_alter_table("jobs") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
