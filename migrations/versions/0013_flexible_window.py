"""a flexible window: each occurrence fires at the job's point within it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 23:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("jobs", sa.Column("window", sa.Integer(), nullable=True))


def downgrade():
    op.drop_column("jobs", "window")
