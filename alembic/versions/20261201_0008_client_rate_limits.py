"""a client's own rate limit: the cost points its bucket holds (null: the operator's default)

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-01 19:30:00.000000

Set by the admin with ``programme-api clients set-rate-limit CLIENT_ID POINTS``. A nullable column without a
default: adding it rewrites no rows (an ``ALTER TABLE`` on both databases); dropping it again copies the table
in SQLite's batch mode.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("rate_limit_points", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("rate_limit_points")
