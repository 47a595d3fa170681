"""evaluation projects choose their own bands of sessions attended

Revision ID: 0012
Revises: 0006
Create Date: 2026-12-01 19:30:00.000000

``dose_bands`` lists the lower bounds of the bands of sessions attended that dose-response tables group
follow-ups by (``[0, 4, 8]`` is 0-3, 4-7, 8+). Null means those default bands, so existing projects keep
working without a value.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluation_projects") as batch:
        batch.add_column(sa.Column("dose_bands", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluation_projects") as batch:
        batch.drop_column("dose_bands")
