"""payload templates: placeholders filled at delivery

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 23:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "jobs",
        sa.Column("template", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade():
    op.drop_column("jobs", "template")
