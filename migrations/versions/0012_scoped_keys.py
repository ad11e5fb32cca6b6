"""keys scoped by label: a key that sees only the jobs carrying its labels

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 23:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("api_keys", sa.Column("labels", sa.JSON(), nullable=True))


def downgrade():
    op.drop_column("api_keys", "labels")
